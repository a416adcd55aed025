import { fusedDecoderLayer } from '../../engine/fused/decoder-layer.js';
import type { FusedProjection } from '../../engine/fused/decoder-layer.js';
import { fusedKernelsActive, recordingGradients } from '../../engine/fused/fused-op.js';
import { tf } from '../../engine/tf.js';
import type { KVCache } from '../../generation/cache.js';
import type { ForwardContext, Layer } from '../../nn/index.js';
import { RMSNorm } from '../../nn/index.js';
import type { LlamaDecoderLayer, RotaryEmbeddings } from './modeling.js';

/**
 * `LlamaDecoderLayer.forward` as one fused kernel, for inference (no gradient tape, no attention dropout, SiLU
 * MLP, every projection a Linear or a LoRA/X-LoRA layer that folds into one). Returns undefined otherwise: the
 * layer then composes its modules as usual. The same arithmetic either way, up to float rounding.
 */
export function fusedLlamaDecoderLayer(
  layer: LlamaDecoderLayer,
  hidden: tf.Tensor3D,
  rope: RotaryEmbeddings,
  bias: tf.Tensor4D,
  cache: KVCache | undefined,
  ctx?: ForwardContext,
): tf.Tensor3D | undefined {
  if (!fusedKernelsActive() || recordingGradients()) return undefined;
  const { self_attn: attn, mlp, input_layernorm: ln1, post_attention_layernorm: ln2 } = layer;
  if ((attn.training && attn.attentionDropout > 0) || mlp.act_fn.name !== 'silu') return undefined;
  // A norm subclass that overrides forward computes something else (Gemma's 1 + w, say): it does not fold.
  if (![ln1, ln2].every((n) => n instanceof RMSNorm && n.forward === RMSNorm.prototype.forward)) return undefined;
  const lead = hidden.shape.slice(0, 2);
  return tf.tidy(() => {
    const project = (m: Layer) => m.fusedProjection?.(lead, ctx);
    const projections = {
      q: project(attn.q_proj),
      k: project(attn.k_proj),
      v: project(attn.v_proj),
      o: project(attn.o_proj),
      gate: project(mlp.gate_proj),
      up: project(mlp.up_proj),
      down: project(mlp.down_proj),
    };
    if (Object.values(projections).some((p) => p === undefined)) return undefined;
    const { numAttentionHeads: heads, numKeyValueHeads: kvHeads } = attn.config;
    const out = fusedDecoderLayer(
      { heads, kvHeads, headDim: attn.headDim, scale: attn.scaling, inputNormEps: ln1.eps, postNormEps: ln2.eps },
      {
        hidden,
        inputNorm: ln1.weight,
        postNorm: ln2.weight,
        cos: rope.cos,
        sin: rope.sin,
        bias,
        past: cache?.past(attn.layerIdx),
        withCache: cache !== undefined,
        projections: projections as Record<keyof typeof projections, FusedProjection>,
      },
    );
    if (!out) return undefined;
    if (cache) cache.append(attn.layerIdx, out.key!, out.value!);
    return out.hidden;
  });
}

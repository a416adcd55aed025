import { fusedDecoder } from '../../engine/fused/decoder-stack.js';
import type { FusedDecoderLayer, FusedProjection } from '../../engine/fused/decoder-stack.js';
import { fusedKernelsActive, recordingGradients } from '../../engine/fused/fused-op.js';
import { tf } from '../../engine/tf.js';
import type { KVCache } from '../../generation/cache.js';
import type { ForwardContext, Layer } from '../../nn/index.js';
import { RMSNorm } from '../../nn/index.js';
import type { LlamaDecoderLayer, RotaryEmbeddings } from './modeling.js';

/**
 * `LlamaModel`'s decoder layers as one fused kernel, for inference: no gradient tape, no attention dropout,
 * SiLU MLPs, plain RMSNorms, and every projection a Linear or a LoRA/X-LoRA layer that folds into one. Returns
 * undefined otherwise, and the layers compose their modules as usual: the same arithmetic, up to float rounding.
 * `hiddenStates` are the inputs of every layer (the first is `hidden` itself), as the composed loop collects them.
 */
export function fusedLlamaDecoder(
  layers: readonly LlamaDecoderLayer[],
  hidden: tf.Tensor3D,
  rope: RotaryEmbeddings,
  biasOf: (layer: LlamaDecoderLayer) => tf.Tensor4D,
  cache: KVCache | undefined,
  outputHiddenStates: boolean,
  ctx?: ForwardContext,
): { hidden: tf.Tensor3D; hiddenStates: tf.Tensor3D[] } | undefined {
  if (!fusedKernelsActive() || recordingGradients() || layers.length === 0) return undefined;
  const first = layers[0]!;
  const eps = [first.input_layernorm.eps, first.post_attention_layernorm.eps];
  for (const { self_attn: attn, mlp, input_layernorm: ln1, post_attention_layernorm: ln2 } of layers) {
    if ((attn.training && attn.attentionDropout > 0) || mlp.act_fn.name !== 'silu') return undefined;
    // A norm subclass that overrides forward computes something else (Gemma's 1 + w, say): it does not fold.
    if (![ln1, ln2].every((n) => n instanceof RMSNorm && n.forward === RMSNorm.prototype.forward)) return undefined;
    if (ln1.eps !== eps[0] || ln2.eps !== eps[1]) return undefined;
  }
  const lead = hidden.shape.slice(0, 2);
  return tf.tidy(() => {
    const project = (m: Layer) => m.fusedProjection?.(lead, ctx);
    const folded: FusedDecoderLayer[] = [];
    for (const layer of layers) {
      const { self_attn: attn, mlp } = layer;
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
      folded.push({
        inputNorm: layer.input_layernorm.weight,
        postNorm: layer.post_attention_layernorm.weight,
        bias: biasOf(layer),
        past: cache?.past(attn.layerIdx),
        projections: projections as Record<keyof typeof projections, FusedProjection>,
      });
    }
    const { numAttentionHeads: heads, numKeyValueHeads: kvHeads } = first.self_attn.config;
    const out = fusedDecoder(
      { heads, kvHeads, headDim: first.self_attn.headDim, scale: first.self_attn.scaling, inputNormEps: eps[0]!, postNormEps: eps[1]! },
      { hidden, cos: rope.cos, sin: rope.sin, layers: folded, withCache: cache !== undefined, withHiddenStates: outputHiddenStates },
    );
    if (!out) return undefined;
    if (cache) layers.forEach((layer, i) => cache.append(layer.self_attn.layerIdx, out.keys[i]!, out.values[i]!));
    return { hidden: out.hidden, hiddenStates: outputHiddenStates ? [hidden, ...out.hiddenStates] : [] };
  });
}

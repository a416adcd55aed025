import { tf } from '../../engine/tf.js';
import { normal } from '../../nn/init.js';
import { ShapeError } from '../../errors.js';
import { fusedFrozenMlp } from '../../engine/fused/mlp.js';
import { fusedSelfAttention } from '../../engine/fused/self-attention.js';
import { swiGlu } from '../../engine/fused/swiglu.js';
import { Activation, Embedding, Linear, Module, ModuleList, RMSNorm, dropout, isPlainLinear } from '../../nn/index.js';
import type { ForwardContext, Layer, RMSNormOptions } from '../../nn/index.js';
import type { KVCache } from '../../generation/cache.js';
import {
  applyRotaryPosEmb,
  causalAttentionBias,
  mergeHeads,
  repeatKv,
  scaledDotProductAttention,
  slidingWindowCausalAttentionBias,
  splitHeads,
} from '../attention.js';
import type { RawConfig } from '../config-fields.js';
import { idsTensor } from '../inputs.js';
import { PreTrainedCausalLM } from '../pretrained.js';
import type { CausalDecoder } from '../pretrained.js';
import type { CausalLMInput } from '../outputs.js';
import { parseLlamaConfig } from './config.js';
import type { AttentionLayerType, LlamaConfig } from './config.js';
import { computeRopeInvFreq } from './rope.js';
import { fusedLlamaDecoder } from './fused-decoder.js';
import type { RopeType } from './rope.js';

// One decoder implementation for Llama and the architectures transformers copies it into (Mistral, Qwen2): they
// differ only in config (projection biases, sliding windows, defaults) and in class names, which each
// architecture sets through its `LlamaModuleClasses`. Module and attribute names follow transformers'
// modeling_llama.py exactly (snake_case included), so state-dict keys and PEFT target names map one to one.
//
// Layers start empty (`noInit`): `LlamaForCausalLM.initWeights` draws every weight once, as transformers does.
const noInit = { skipInit: true } as const;

/** transformers' `LlamaRMSNorm`: RMSNorm in float32, weight initialised to ones. */
export class LlamaRMSNorm extends RMSNorm {}

/** cos and sin of the rotary angles, `[batch|1, seq, headDim]`. */
export interface RotaryEmbeddings {
  cos: tf.Tensor3D;
  sin: tf.Tensor3D;
}

/**
 * transformers' `LlamaRotaryEmbedding`: no parameters, two non-persistent buffers (`inv_freq`,
 * `original_inv_freq`), computed in float32 as transformers computes them. `dynamic` RoPE updates `inv_freq`
 * when positions grow past `max_position_embeddings` and restores it for short inputs, as transformers'
 * `dynamic_rope_update` does (state kept across calls).
 */
export class LlamaRotaryEmbedding extends Module {
  readonly ropeType: RopeType;
  /** Multiplies cos and sin (1 for the RoPE types implemented). */
  readonly attentionScaling: number;
  inv_freq: tf.Tensor1D;
  original_inv_freq: tf.Tensor1D;
  private maxSeqLenCached: number;
  private readonly originalMaxSeqLen: number;

  constructor(private readonly config: LlamaConfig) {
    super();
    this.ropeType = config.ropeParameters.ropeType;
    this.maxSeqLenCached = config.maxPositionEmbeddings;
    this.originalMaxSeqLen = config.maxPositionEmbeddings;
    const { invFreq, attentionScaling } = computeRopeInvFreq(config.ropeParameters, config.headDim, config.maxPositionEmbeddings);
    this.attentionScaling = attentionScaling;
    this.inv_freq = this.registerBuffer('inv_freq', tf.tensor1d(invFreq, 'float32'), { persistent: false }) as tf.Tensor1D;
    this.original_inv_freq = this.registerBuffer('original_inv_freq', tf.tensor1d(invFreq, 'float32'), { persistent: false }) as tf.Tensor1D;
  }

  /** cos/sin for `positionIds` `[batch|1, seq]`: angles `position * inv_freq`, duplicated over both halves. */
  forward(positionIds: tf.Tensor2D, _ctx?: ForwardContext): RotaryEmbeddings {
    if (this.ropeType === 'dynamic') this.dynamicFrequencyUpdate(positionIds);
    return tf.tidy(() => {
      const freqs = tf.mul(tf.expandDims(tf.cast(positionIds, 'float32'), -1), this.inv_freq);
      const emb = tf.concat([freqs, freqs], -1);
      let cos = tf.cos(emb) as tf.Tensor3D;
      let sin = tf.sin(emb) as tf.Tensor3D;
      if (this.attentionScaling !== 1) {
        cos = tf.mul(cos, this.attentionScaling);
        sin = tf.mul(sin, this.attentionScaling);
      }
      return { cos, sin };
    });
  }

  override extraRepr(): string {
    return '';
  }

  private dynamicFrequencyUpdate(positionIds: tf.Tensor2D): void {
    const max = tf.max(positionIds);
    const seqLen = max.dataSync()[0]! + 1;
    max.dispose();
    if (seqLen > this.maxSeqLenCached) {
      const { invFreq } = computeRopeInvFreq(this.config.ropeParameters, this.config.headDim, this.config.maxPositionEmbeddings, seqLen);
      this.inv_freq = this.registerBuffer('inv_freq', tf.tensor1d(invFreq, 'float32'), { persistent: false }) as tf.Tensor1D;
      this.maxSeqLenCached = seqLen;
    } else if (seqLen < this.originalMaxSeqLen && this.maxSeqLenCached > this.originalMaxSeqLen) {
      this.inv_freq = this.registerBuffer('inv_freq', this.original_inv_freq.clone(), { persistent: false }) as tf.Tensor1D;
      this.maxSeqLenCached = this.originalMaxSeqLen;
    }
  }
}

/** transformers' `LlamaMLP`: `down_proj(act_fn(gate_proj(x)) * up_proj(x))`. */
export class LlamaMLP extends Module {
  gate_proj: Layer;
  up_proj: Layer;
  down_proj: Layer;
  act_fn: Activation;

  constructor(config: LlamaConfig) {
    super();
    const bias = { bias: config.mlpBias, ...noInit };
    this.gate_proj = this.registerModule('gate_proj', new Linear(config.hiddenSize, config.intermediateSize, bias));
    this.up_proj = this.registerModule('up_proj', new Linear(config.hiddenSize, config.intermediateSize, bias));
    this.down_proj = this.registerModule('down_proj', new Linear(config.intermediateSize, config.hiddenSize, bias));
    this.act_fn = this.registerModule('act_fn', new Activation(config.hiddenAct));
  }

  forward(x: tf.Tensor, ctx?: ForwardContext): tf.Tensor {
    const projections = [this.gate_proj, this.up_proj, this.down_proj];
    // Frozen plain Linears (adapters on the attention only): one kernel each way.
    if (this.act_fn.name === 'silu' && projections.every(isPlainLinear)) {
      const fused = fusedFrozenMlp(x, ...(projections as [Linear, Linear, Linear]));
      if (fused) return fused;
    }
    return tf.tidy(() => {
      const gate = this.gate_proj.forward(x, ctx);
      const up = this.up_proj.forward(x, ctx);
      const gated = this.act_fn.name === 'silu' ? swiGlu(gate, up) : tf.mul(this.act_fn.forward(gate, ctx), up);
      return this.down_proj.forward(gated, ctx);
    });
  }
}

/**
 * transformers' `LlamaAttention` (eager): rotary q/k, grouped-query attention (`repeat_kv`), scaling
 * `head_dim^-0.5`, softmax in float32, dropout on the weights in training. The KV cache holds the
 * un-repeated `num_key_value_heads` keys/values, after RoPE, as transformers' cache does.
 */
export class LlamaAttention extends Module {
  q_proj: Layer;
  k_proj: Layer;
  v_proj: Layer;
  o_proj: Layer;
  readonly headDim: number;
  readonly numKeyValueGroups: number;
  readonly scaling: number;
  readonly attentionDropout: number;
  /** This layer's attention kind; its mask comes from the model. */
  readonly layerType: AttentionLayerType;
  /** Sliding window of this layer, or null for full causal attention. */
  readonly slidingWindow: number | null;

  constructor(
    readonly config: LlamaConfig,
    readonly layerIdx: number,
  ) {
    super();
    const { hiddenSize, numAttentionHeads: heads, numKeyValueHeads: kvHeads, headDim } = config;
    this.headDim = headDim;
    this.numKeyValueGroups = heads / kvHeads;
    this.scaling = headDim ** -0.5;
    this.attentionDropout = config.attentionDropout;
    this.layerType = config.layerTypes[layerIdx] ?? 'full_attention';
    this.slidingWindow = this.layerType === 'sliding_attention' ? config.slidingWindow : null;
    const qkv = { bias: config.attentionBias, ...noInit };
    this.q_proj = this.registerModule('q_proj', new Linear(hiddenSize, heads * headDim, qkv));
    this.k_proj = this.registerModule('k_proj', new Linear(hiddenSize, kvHeads * headDim, qkv));
    this.v_proj = this.registerModule('v_proj', new Linear(hiddenSize, kvHeads * headDim, qkv));
    this.o_proj = this.registerModule('o_proj', new Linear(heads * headDim, hiddenSize, { bias: config.oProjBias, ...noInit }));
  }

  forward(
    hidden: tf.Tensor3D,
    positionEmbeddings: RotaryEmbeddings,
    bias: tf.Tensor4D,
    cache: KVCache | undefined,
    ctx?: ForwardContext,
  ): tf.Tensor3D {
    return tf.tidy(() => {
      const { numAttentionHeads: heads, numKeyValueHeads: kvHeads } = this.config;
      const { cos, sin } = positionEmbeddings;
      const p = this.attentionDropout;
      const drop = this.training && p > 0 ? (w: tf.Tensor) => dropout(w, p) : undefined;
      const q = this.q_proj.forward(hidden, ctx) as tf.Tensor3D;
      const k = this.k_proj.forward(hidden, ctx) as tf.Tensor3D;
      const v = this.v_proj.forward(hidden, ctx) as tf.Tensor3D;
      if (!cache && !drop) {
        // Training and uncached forwards: heads, rotary and attention in one kernel each way where there is one.
        const fused = fusedSelfAttention({ heads, kvHeads, headDim: this.headDim, scale: this.scaling }, q, k, v, cos, sin, bias);
        if (fused) return this.o_proj.forward(fused, ctx) as tf.Tensor3D;
      }
      const query = applyRotaryPosEmb(splitHeads(q, heads), cos, sin);
      let key = applyRotaryPosEmb(splitHeads(k, kvHeads), cos, sin);
      let value = splitHeads(v, kvHeads);
      if (cache) ({ key, value } = cache.update(this.layerIdx, key, value));
      const attended = scaledDotProductAttention(
        query,
        repeatKv(key, this.numKeyValueGroups),
        repeatKv(value, this.numKeyValueGroups),
        bias,
        this.scaling,
        drop,
      );
      return this.o_proj.forward(mergeHeads(attended), ctx) as tf.Tensor3D;
    });
  }
}

/** transformers' `LlamaDecoderLayer`: pre-norm attention and MLP, each with a residual connection. */
export class LlamaDecoderLayer extends Module {
  self_attn: LlamaAttention;
  mlp: LlamaMLP;
  input_layernorm: RMSNorm;
  post_attention_layernorm: RMSNorm;

  constructor(config: LlamaConfig, layerIdx: number, classes: LlamaModuleClasses = llamaModuleClasses) {
    super();
    this.self_attn = this.registerModule('self_attn', new classes.Attention(config, layerIdx));
    this.mlp = this.registerModule('mlp', new classes.MLP(config));
    this.input_layernorm = this.registerModule('input_layernorm', new classes.RMSNorm(config.hiddenSize, { eps: config.rmsNormEps }));
    this.post_attention_layernorm = this.registerModule(
      'post_attention_layernorm',
      new classes.RMSNorm(config.hiddenSize, { eps: config.rmsNormEps }),
    );
  }

  forward(
    hidden: tf.Tensor3D,
    positionEmbeddings: RotaryEmbeddings,
    bias: tf.Tensor4D,
    cache: KVCache | undefined,
    ctx?: ForwardContext,
  ): tf.Tensor3D {
    return tf.tidy(() => {
      const normed = this.input_layernorm.forward(hidden, ctx) as tf.Tensor3D;
      const afterAttn = tf.add(hidden, this.self_attn.forward(normed, positionEmbeddings, bias, cache, ctx));
      return tf.add(afterAttn, this.mlp.forward(this.post_attention_layernorm.forward(afterAttn, ctx), ctx)) as tf.Tensor3D;
    });
  }
}

/** transformers' `LlamaModel`: token embedding, decoder layers, final norm, rotary embedding. */
export class LlamaModel extends Module {
  embed_tokens: Embedding;
  layers: ModuleList<LlamaDecoderLayer>;
  norm: RMSNorm;
  rotary_emb: LlamaRotaryEmbedding;

  constructor(
    readonly config: LlamaConfig,
    classes: LlamaModuleClasses = llamaModuleClasses,
  ) {
    super();
    this.embed_tokens = this.registerModule('embed_tokens', new Embedding(config.vocabSize, config.hiddenSize, { paddingIdx: config.paddingIdx, ...noInit }));
    this.layers = this.registerModule(
      'layers',
      new ModuleList(Array.from({ length: config.numHiddenLayers }, (_, i) => new classes.DecoderLayer(config, i, classes))),
    );
    this.norm = this.registerModule('norm', new classes.RMSNorm(config.hiddenSize, { eps: config.rmsNormEps }));
    this.rotary_emb = this.registerModule('rotary_emb', new classes.RotaryEmbedding(config));
  }

  /** Runs the decoder; returns the final hidden state and, if asked, every layer's input and the final output. */
  forward(
    input: Pick<CausalLMInput, 'inputIds' | 'attentionMask' | 'positionIds' | 'outputHiddenStates'>,
    cache: KVCache | undefined,
    ctx?: ForwardContext,
  ): { lastHiddenState: tf.Tensor3D; hiddenStates?: tf.Tensor3D[] } {
    return tf.tidy(() => {
      const ids = idsTensor(input.inputIds, 'inputIds');
      const [batch, seq] = ids.shape;
      const past = cache?.getSeqLength() ?? 0;
      const positions = input.positionIds ? idsTensor(input.positionIds, 'positionIds') : tf.range(past, past + seq, 1, 'int32').reshape([1, seq]);
      if (positions.shape[1] !== seq || (positions.shape[0] !== batch && positions.shape[0] !== 1)) {
        throw new ShapeError(`positionIds must have shape [${batch}, ${seq}] (or [1, ${seq}]), got [${positions.shape.join(', ')}].`);
      }
      const mask = input.attentionMask ? idsTensor(input.attentionMask, 'attentionMask') : undefined;
      const biases = this.attentionBiases(seq, past, mask);
      let hidden = this.embed_tokens.forward(ids, ctx) as tf.Tensor3D;
      const positionEmbeddings = this.rotary_emb.forward(positions as tf.Tensor2D, ctx);
      const biasOf = (layer: LlamaDecoderLayer) => biases[this.config.layerTypes[layer.self_attn.layerIdx] ?? 'full_attention']!;
      const fused = fusedLlamaDecoder([...this.layers], hidden, positionEmbeddings, biasOf, cache, input.outputHiddenStates ?? false, ctx);
      const hiddenStates: tf.Tensor3D[] = fused?.hiddenStates ?? [];
      if (fused) hidden = fused.hidden;
      else {
        for (const layer of this.layers) {
          if (input.outputHiddenStates) hiddenStates.push(hidden);
          hidden = layer.forward(hidden, positionEmbeddings, biasOf(layer), cache, ctx);
        }
      }
      hidden = this.norm.forward(hidden, ctx) as tf.Tensor3D;
      if (!input.outputHiddenStates) return { lastHiddenState: hidden };
      hiddenStates.push(hidden);
      return { lastHiddenState: hidden, hiddenStates };
    });
  }

  /** One additive mask per attention kind in use: causal, and sliding-window causal for sliding layers. */
  private attentionBiases(seq: number, past: number, mask: tf.Tensor2D | undefined): Partial<Record<AttentionLayerType, tf.Tensor4D>> {
    const kinds = new Set(this.config.layerTypes);
    const out: Partial<Record<AttentionLayerType, tf.Tensor4D>> = {};
    if (kinds.has('full_attention') || kinds.size === 0) out.full_attention = causalAttentionBias(seq, past, mask);
    if (kinds.has('sliding_attention')) {
      out.sliding_attention = slidingWindowCausalAttentionBias(seq, past, this.config.slidingWindow!, mask);
    }
    return out;
  }
}

/**
 * The module classes an architecture of the Llama family builds: Mistral and Qwen2 pass subclasses named as in
 * transformers (`MistralAttention`, `Qwen2RMSNorm`, ...), so printouts match PyTorch's.
 */
export interface LlamaModuleClasses {
  readonly Model: new (config: LlamaConfig, classes?: LlamaModuleClasses) => LlamaModel;
  readonly DecoderLayer: new (config: LlamaConfig, layerIdx: number, classes?: LlamaModuleClasses) => LlamaDecoderLayer;
  readonly Attention: new (config: LlamaConfig, layerIdx: number) => LlamaAttention;
  readonly MLP: new (config: LlamaConfig) => LlamaMLP;
  readonly RMSNorm: new (dim: number, options?: RMSNormOptions) => RMSNorm;
  readonly RotaryEmbedding: new (config: LlamaConfig) => LlamaRotaryEmbedding;
}

export const llamaModuleClasses: LlamaModuleClasses = {
  Model: LlamaModel,
  DecoderLayer: LlamaDecoderLayer,
  Attention: LlamaAttention,
  MLP: LlamaMLP,
  RMSNorm: LlamaRMSNorm,
  RotaryEmbedding: LlamaRotaryEmbedding,
};

/**
 * transformers' `LlamaForCausalLM`: `model` (a `LlamaModel`) and `lm_head` (tied to `model.embed_tokens` when
 * `tie_word_embeddings`). `MistralForCausalLM` and `Qwen2ForCausalLM` subclass it, overriding the statics.
 */
export class LlamaForCausalLM extends PreTrainedCausalLM<LlamaConfig> {
  static readonly modelType: string = 'llama';
  static readonly baseModelPrefix: string = 'model';
  /** Old checkpoints (transformers < 4.31) saved the rotary `inv_freq` buffers; they hold no learnt values. */
  static readonly ignoredCheckpointKeys: readonly RegExp[] = [/(^|\.)rotary_emb\.inv_freq$/];
  /** Module classes this architecture builds. */
  static readonly moduleClasses: LlamaModuleClasses = llamaModuleClasses;

  /** Parses a raw `config.json` of this architecture. */
  static parseConfig(raw: RawConfig): LlamaConfig {
    return parseLlamaConfig(raw);
  }

  model: LlamaModel;
  lm_head: Linear;
  readonly config: LlamaConfig;

  constructor(config: LlamaConfig | RawConfig = {}, options: { seed?: number } = {}) {
    super();
    const cls = new.target;
    this.config = 'modelType' in config ? (config as LlamaConfig) : cls.parseConfig(config);
    const classes = cls.moduleClasses;
    this.model = this.registerModule('model', new classes.Model(this.config, classes));
    this.lm_head = this.registerModule('lm_head', new Linear(this.config.hiddenSize, this.config.vocabSize, { bias: false, ...noInit }));
    if (this.config.tieWordEmbeddings) this.lm_head.tieParameter('weight', this.model.embed_tokens.weight);
    this.initWeights(options.seed);
    this.eval();
  }

  get numLayers(): number {
    return this.config.numHiddenLayers;
  }

  protected get decoder(): CausalDecoder {
    return this.model;
  }

  /**
   * transformers' `_init_weights`: Linear and Embedding weights N(0, initializer_range), the embedding's padding
   * row zeroed, biases zeros, norm weights ones (a tied weight is drawn once).
   */
  private initWeights(seed?: number): void {
    const std = this.config.initializerRange;
    let next = seed;
    const seen = new Set<tf.Variable>();
    for (const [, module] of this.namedModules()) {
      if (!(module instanceof Linear) && !(module instanceof Embedding)) continue;
      const weight = module.weight;
      if (seen.has(weight)) continue;
      seen.add(weight);
      const value = tf.tidy(() => {
        const drawn = normal(weight.shape, 0, std, next === undefined ? {} : { seed: next++ });
        if (!(module instanceof Embedding) || module.paddingIdx === null) return drawn;
        const isPad = tf.equal(tf.range(0, module.numEmbeddings, 1, 'int32'), module.paddingIdx).reshape([module.numEmbeddings, 1]);
        return tf.where(tf.broadcastTo(isPad, weight.shape), tf.zerosLike(drawn), drawn);
      });
      weight.assign(value);
      value.dispose();
    }
  }
}

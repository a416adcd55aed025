import { tf } from '../../engine/tf.js';
import { Activation, Embedding, LayerNorm, Linear, Module, ModuleList, dropout } from '../../nn/index.js';
import type { ForwardContext, Layer } from '../../nn/index.js';
import { ShapeError } from '../../errors.js';
import { causalAttentionBias, mergeHeads, scaledDotProductAttention, splitHeads } from '../attention.js';
import { checkedIds, initWeightsLikeTransformers } from '../encoder.js';
import { idsTensor } from '../inputs.js';
import { PreTrainedEncoder } from '../pretrained.js';
import type { EncoderInput, EncoderOutput } from '../pretrained.js';
import { parseCLIPTextConfig } from './config.js';
import type { CLIPTextConfig } from './config.js';

// Layers start empty (`noInit`): `CLIPTextModel` draws every weight once, as transformers' `_init_weights`.
const noInit = { skipInit: true } as const;

// Module and attribute names follow transformers' modeling_clip.py (transformers 5: `CLIPTextModel` holds
// `embeddings`, `encoder`, `final_layer_norm` directly; checkpoints written by transformers 4 nest them under
// `text_model.`, which loading strips as transformers' `PrefixChange("text_model")` does).

export class CLIPTextEmbeddings extends Module {
  token_embedding: Embedding;
  position_embedding: Embedding;
  /** Non-persistent buffer `[1, max_position_embeddings]`, as in transformers (not saved). */
  readonly position_ids: tf.Tensor2D;

  constructor(private readonly config: CLIPTextConfig) {
    super();
    this.token_embedding = this.registerModule('token_embedding', new Embedding(config.vocabSize, config.hiddenSize, noInit));
    this.position_embedding = this.registerModule('position_embedding', new Embedding(config.maxPositionEmbeddings, config.hiddenSize, noInit));
    const maxPos = config.maxPositionEmbeddings;
    this.position_ids = this.registerBuffer('position_ids', tf.range(0, maxPos, 1, 'int32').reshape([1, maxPos]), { persistent: false }) as tf.Tensor2D;
  }

  forward(ids: tf.Tensor2D, positionIds: tf.Tensor2D | undefined, ctx?: ForwardContext): tf.Tensor3D {
    return tf.tidy(() => {
      const seq = ids.shape[1];
      if (seq > this.config.maxPositionEmbeddings) {
        throw new ShapeError(`Sequence length ${seq} exceeds max_position_embeddings (${this.config.maxPositionEmbeddings}) of this CLIP text model.`);
      }
      const positions = positionIds ?? tf.slice(this.position_ids, [0, 0], [1, seq]);
      return tf.add(this.token_embedding.forward(ids, ctx), this.position_embedding.forward(positions, ctx)) as tf.Tensor3D;
    });
  }
}

export class CLIPAttention extends Module {
  k_proj: Layer;
  v_proj: Layer;
  q_proj: Layer;
  out_proj: Layer;
  private readonly scale: number;

  constructor(private readonly config: CLIPTextConfig) {
    super();
    const width = config.hiddenSize;
    this.k_proj = this.registerModule('k_proj', new Linear(width, width, noInit));
    this.v_proj = this.registerModule('v_proj', new Linear(width, width, noInit));
    this.q_proj = this.registerModule('q_proj', new Linear(width, width, noInit));
    this.out_proj = this.registerModule('out_proj', new Linear(width, width, noInit));
    this.scale = Math.pow(Math.floor(width / config.numAttentionHeads), -0.5);
  }

  forward(hidden: tf.Tensor3D, bias: tf.Tensor4D, ctx?: ForwardContext): tf.Tensor3D {
    return tf.tidy(() => {
      const heads = this.config.numAttentionHeads;
      const q = splitHeads(this.q_proj.forward(hidden, ctx), heads);
      const k = splitHeads(this.k_proj.forward(hidden, ctx), heads);
      const v = splitHeads(this.v_proj.forward(hidden, ctx), heads);
      // CLIP's attention dropout is a rate, not a module (`nn.functional.dropout` on the weights in training).
      const p = this.config.attentionDropout;
      const drop = this.training && p > 0 ? (w: tf.Tensor) => dropout(w, p) : undefined;
      return this.out_proj.forward(mergeHeads(scaledDotProductAttention(q, k, v, bias, this.scale, drop)), ctx) as tf.Tensor3D;
    });
  }
}

export class CLIPMLP extends Module {
  activation_fn: Activation;
  fc1: Layer;
  fc2: Layer;

  constructor(config: CLIPTextConfig) {
    super();
    this.activation_fn = this.registerModule('activation_fn', new Activation(config.hiddenAct));
    this.fc1 = this.registerModule('fc1', new Linear(config.hiddenSize, config.intermediateSize, noInit));
    this.fc2 = this.registerModule('fc2', new Linear(config.intermediateSize, config.hiddenSize, noInit));
  }

  forward(hidden: tf.Tensor3D, ctx?: ForwardContext): tf.Tensor3D {
    return tf.tidy(() => this.fc2.forward(this.activation_fn.forward(this.fc1.forward(hidden, ctx), ctx), ctx) as tf.Tensor3D);
  }
}

export class CLIPEncoderLayer extends Module {
  self_attn: CLIPAttention;
  layer_norm1: LayerNorm;
  mlp: CLIPMLP;
  layer_norm2: LayerNorm;

  constructor(config: CLIPTextConfig) {
    super();
    this.self_attn = this.registerModule('self_attn', new CLIPAttention(config));
    this.layer_norm1 = this.registerModule('layer_norm1', new LayerNorm(config.hiddenSize, { eps: config.layerNormEps }));
    this.mlp = this.registerModule('mlp', new CLIPMLP(config));
    this.layer_norm2 = this.registerModule('layer_norm2', new LayerNorm(config.hiddenSize, { eps: config.layerNormEps }));
  }

  forward(hidden: tf.Tensor3D, bias: tf.Tensor4D, ctx?: ForwardContext): tf.Tensor3D {
    return tf.tidy(() => {
      const attended = tf.add(hidden, this.self_attn.forward(this.layer_norm1.forward(hidden, ctx) as tf.Tensor3D, bias, ctx)) as tf.Tensor3D;
      return tf.add(attended, this.mlp.forward(this.layer_norm2.forward(attended, ctx) as tf.Tensor3D, ctx)) as tf.Tensor3D;
    });
  }
}

export class CLIPEncoder extends Module {
  layers: ModuleList<CLIPEncoderLayer>;

  constructor(config: CLIPTextConfig) {
    super();
    this.layers = this.registerModule('layers', new ModuleList(Array.from({ length: config.numHiddenLayers }, () => new CLIPEncoderLayer(config))));
  }

  /** The last layer's output and, if asked, the input followed by every layer's output. */
  forward(hidden: tf.Tensor3D, bias: tf.Tensor4D, outputHiddenStates: boolean, ctx?: ForwardContext): { last: tf.Tensor3D; all?: tf.Tensor3D[] } {
    return tf.tidy(() => {
      const all: tf.Tensor3D[] = [hidden];
      let h = hidden;
      for (const layer of this.layers) {
        h = layer.forward(h, bias, ctx);
        all.push(h);
      }
      return outputHiddenStates ? { last: h, all } : { last: h };
    });
  }
}

/**
 * transformers' `CLIPTextModel`: causal text transformer whose pooled output is the final-norm hidden state at
 * the EOS token. `hiddenStates` are the embeddings and each layer's output, before `final_layer_norm` (as
 * transformers returns them).
 */
export class CLIPTextModel extends PreTrainedEncoder<CLIPTextConfig> {
  static readonly modelType = 'clip_text_model';
  /** transformers 4 nested the text tower under `text_model` (also the key prefix in full CLIP checkpoints). */
  static readonly baseModelPrefix = 'text_model';
  /**
   * The old persistent `position_ids` buffer. (What full CLIP checkpoints hold beside `text_model.`, the vision
   * tower and projections, is dropped with the prefix, as transformers drops it.)
   */
  static readonly ignoredCheckpointKeys = [/(^|\.)embeddings\.position_ids$/];

  embeddings: CLIPTextEmbeddings;
  encoder: CLIPEncoder;
  final_layer_norm: LayerNorm;
  readonly config: CLIPTextConfig;

  constructor(config: CLIPTextConfig | Record<string, unknown> = {}, options: { seed?: number } = {}) {
    super();
    this.config =
      'modelType' in config && config['modelType'] === 'clip_text_model'
        ? (config as CLIPTextConfig)
        : parseCLIPTextConfig(config as Record<string, unknown>);
    this.embeddings = this.registerModule('embeddings', new CLIPTextEmbeddings(this.config));
    this.encoder = this.registerModule('encoder', new CLIPEncoder(this.config));
    this.final_layer_norm = this.registerModule('final_layer_norm', new LayerNorm(this.config.hiddenSize, { eps: this.config.layerNormEps }));
    this.initWeights(options.seed);
    this.eval();
  }

  forward(input: EncoderInput, ctx?: ForwardContext): EncoderOutput {
    return tf.tidy(() => {
      const ids = idsTensor(input.inputIds, 'inputIds');
      const [batch, seq] = ids.shape;
      const positionIds = input.positionIds ? checkedIds(input.positionIds, 'positionIds', batch, seq) : undefined;
      const mask = input.attentionMask ? checkedIds(input.attentionMask, 'attentionMask', batch, seq) : undefined;
      const bias = causalAttentionBias(seq, 0, mask);
      const embedded = this.embeddings.forward(ids, positionIds, ctx);
      const { last, all } = this.encoder.forward(embedded, bias, input.outputHiddenStates ?? false, ctx);
      const lastHiddenState = this.final_layer_norm.forward(last, ctx) as tf.Tensor3D;
      const poolerOutput = gatherRows(lastHiddenState, this.eosPositions(ids));
      return { lastHiddenState, poolerOutput, ...(all ? { hiddenStates: all } : {}) };
    });
  }

  /**
   * The pooled position of each row, as transformers picks it: with the legacy `eos_token_id == 2`, the first
   * position of the largest id (the EOT token has the largest id in CLIP's vocabulary); otherwise the first
   * position holding `eos_token_id` (0 when a row has none).
   */
  eosPositions(ids: tf.Tensor2D): tf.Tensor1D {
    return tf.tidy(() => {
      const seq = ids.shape[1];
      const eos = this.config.eosTokenId?.[0];
      const hits = eos === 2 ? tf.equal(ids, tf.max(ids, 1, true)) : eos === undefined ? tf.zerosLike(ids).cast('bool') : tf.equal(ids, eos);
      // First hit: the smallest position among hits (argmax's tie-breaking made explicit); `seq` when none.
      const positions = tf.where(hits, tf.range(0, seq, 1, 'int32').reshape([1, seq]).tile([ids.shape[0], 1]), tf.fill(ids.shape, seq, 'int32'));
      const first = tf.min(positions, 1);
      return tf.where(tf.equal(first, seq), tf.zerosLike(first), first) as tf.Tensor1D;
    });
  }

  /**
   * transformers' CLIP `_init_weights` (after the generic one): embeddings N(0, (0.02 f)²), q/k/v
   * N(0, (d^-0.5 (2L)^-0.5 f)²), out_proj N(0, (d^-0.5 f)²), fc1 N(0, ((2d)^-0.5 f)²), fc2 like q/k/v; biases zero,
   * norms ones/zeros (f = initializer_factor, d = hidden size, L = layers).
   */
  private initWeights(seed?: number): void {
    const { hiddenSize: d, numHiddenLayers: layers, initializerFactor: f } = this.config;
    const inProj = Math.pow(d, -0.5) * Math.pow(2 * layers, -0.5) * f;
    const stdFor = (path: string): number | undefined => {
      if (/embeddings\.(token|position)_embedding$/.test(path)) return 0.02 * f;
      if (/self_attn\.[qkv]_proj$/.test(path)) return inProj;
      if (path.endsWith('self_attn.out_proj')) return Math.pow(d, -0.5) * f;
      if (path.endsWith('mlp.fc1')) return Math.pow(2 * d, -0.5) * f;
      if (path.endsWith('mlp.fc2')) return inProj;
      return undefined;
    };
    initWeightsLikeTransformers(this, this.config.initializerRange, seed, stdFor);
  }
}

/** `hidden[b, index[b]]` for each row b: `[batch, seq, width]`, `[batch]` -> `[batch, width]`. */
function gatherRows(hidden: tf.Tensor3D, index: tf.Tensor1D): tf.Tensor2D {
  return tf.tidy(() => {
    const [batch, seq, width] = hidden.shape;
    const flat = tf.add(tf.range(0, batch * seq, seq, 'int32'), tf.cast(index, 'int32'));
    return tf.gather(hidden.reshape([batch * seq, width]), flat) as tf.Tensor2D;
  });
}

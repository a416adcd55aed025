import { tf } from '../../engine/tf.js';
import { Activation, Dropout, Embedding, LayerNorm, Linear, Module, ModuleList } from '../../nn/index.js';
import type { ForwardContext, Layer } from '../../nn/index.js';
import { ShapeError } from '../../errors.js';
import { bidirectionalAttentionBias, mergeHeads, scaledDotProductAttention, splitHeads } from '../attention.js';
import { checkedIds, initWeightsLikeTransformers, sequenceClassificationLoss } from '../encoder.js';
import { idsTensor } from '../inputs.js';
import { PreTrainedEncoder, PreTrainedForSequenceClassification } from '../pretrained.js';
import type { EncoderInput, EncoderOutput, SequenceClassificationInput, SequenceClassificationOutput } from '../pretrained.js';
import { parseDistilBertConfig } from './config.js';
import type { DistilBertConfig } from './config.js';

// Layers start empty (`noInit`): the top-level model draws every weight once, as transformers' `_init_weights`.
const noInit = { skipInit: true } as const;

// Module and attribute names follow transformers' modeling_distilbert.py exactly, so state-dict keys and PEFT
// target names map one to one. DistilBERT's LayerNorms use eps 1e-12, fixed.
const LAYER_NORM_EPS = 1e-12;

/** Old checkpoints saved the (now non-persistent) `position_ids` buffer; it holds no weights. */
const DISTILBERT_IGNORED_KEYS = [/(^|\.)embeddings\.position_ids$/];

function resolveConfig(config: DistilBertConfig | Record<string, unknown>): DistilBertConfig {
  return 'modelType' in config && config['modelType'] === 'distilbert'
    ? (config as DistilBertConfig)
    : parseDistilBertConfig(config as Record<string, unknown>);
}

/**
 * transformers' `create_sinusoidal_embeddings`: row `pos`, column `j` is sin (even j) or cos (odd j) of
 * `pos / 10000^(2 floor(j/2) / dim)`, computed in float64 and stored as float32.
 */
export function sinusoidalEmbeddings(numPositions: number, dim: number): tf.Tensor2D {
  const values = new Float32Array(numPositions * dim);
  for (let pos = 0; pos < numPositions; pos++) {
    for (let j = 0; j < dim; j++) {
      const angle = pos / Math.pow(10000, (2 * Math.floor(j / 2)) / dim);
      values[pos * dim + j] = j % 2 === 0 ? Math.sin(angle) : Math.cos(angle);
    }
  }
  return tf.tensor2d(values, [numPositions, dim], 'float32');
}

/** transformers' DistilBERT `Embeddings`: word + position embeddings, LayerNorm, dropout (no token types). */
export class Embeddings extends Module {
  word_embeddings: Embedding;
  position_embeddings: Embedding;
  LayerNorm: LayerNorm;
  dropout: Dropout;
  /** Non-persistent buffer `[1, max_position_embeddings]`, as in transformers (not saved). */
  readonly position_ids: tf.Tensor2D;

  constructor(private readonly config: DistilBertConfig) {
    super();
    const paddingIdx = config.padTokenId?.[0] ?? null;
    this.word_embeddings = this.registerModule('word_embeddings', new Embedding(config.vocabSize, config.dim, { paddingIdx, ...noInit }));
    this.position_embeddings = this.registerModule('position_embeddings', new Embedding(config.maxPositionEmbeddings, config.dim, noInit));
    this.LayerNorm = this.registerModule('LayerNorm', new LayerNorm(config.dim, { eps: LAYER_NORM_EPS }));
    this.dropout = this.registerModule('dropout', new Dropout(config.dropout));
    const maxPos = config.maxPositionEmbeddings;
    this.position_ids = this.registerBuffer('position_ids', tf.range(0, maxPos, 1, 'int32').reshape([1, maxPos]), { persistent: false }) as tf.Tensor2D;
  }

  forward(ids: tf.Tensor2D, positionIds: tf.Tensor2D | undefined, ctx?: ForwardContext): tf.Tensor3D {
    return tf.tidy(() => {
      const seq = ids.shape[1];
      let positions = positionIds;
      if (!positions) {
        if (seq > this.config.maxPositionEmbeddings) {
          throw new ShapeError(`Sequence length ${seq} exceeds max_position_embeddings (${this.config.maxPositionEmbeddings}) of this DistilBERT.`);
        }
        positions = tf.slice(this.position_ids, [0, 0], [1, seq]);
      }
      const embeddings = tf.add(this.word_embeddings.forward(ids, ctx), this.position_embeddings.forward(positions, ctx));
      return this.dropout.forward(this.LayerNorm.forward(embeddings, ctx), ctx) as tf.Tensor3D;
    });
  }
}

export class DistilBertSelfAttention extends Module {
  q_lin: Layer;
  k_lin: Layer;
  v_lin: Layer;
  out_lin: Layer;
  dropout: Dropout;
  private readonly scaling: number;

  constructor(private readonly config: DistilBertConfig) {
    super();
    const dim = config.dim;
    this.q_lin = this.registerModule('q_lin', new Linear(dim, dim, noInit));
    this.k_lin = this.registerModule('k_lin', new Linear(dim, dim, noInit));
    this.v_lin = this.registerModule('v_lin', new Linear(dim, dim, noInit));
    this.out_lin = this.registerModule('out_lin', new Linear(dim, dim, noInit));
    this.dropout = this.registerModule('dropout', new Dropout(config.attentionDropout));
    this.scaling = 1 / Math.sqrt(Math.floor(dim / config.nHeads));
  }

  forward(hidden: tf.Tensor3D, bias: tf.Tensor4D, ctx?: ForwardContext): tf.Tensor3D {
    return tf.tidy(() => {
      const heads = this.config.nHeads;
      const q = splitHeads(this.q_lin.forward(hidden, ctx), heads);
      const k = splitHeads(this.k_lin.forward(hidden, ctx), heads);
      const v = splitHeads(this.v_lin.forward(hidden, ctx), heads);
      const dropout = this.training && this.dropout.p > 0 ? (w: tf.Tensor) => this.dropout.forward(w, ctx) : undefined;
      const attended = mergeHeads(scaledDotProductAttention(q, k, v, bias, this.scaling, dropout));
      return this.out_lin.forward(attended, ctx) as tf.Tensor3D;
    });
  }
}

/** transformers' DistilBERT `FFN`: lin1 -> activation -> lin2 -> dropout. */
export class FFN extends Module {
  dropout: Dropout;
  lin1: Layer;
  lin2: Layer;
  activation: Activation;

  constructor(config: DistilBertConfig) {
    super();
    this.dropout = this.registerModule('dropout', new Dropout(config.dropout));
    this.lin1 = this.registerModule('lin1', new Linear(config.dim, config.hiddenDim, noInit));
    this.lin2 = this.registerModule('lin2', new Linear(config.hiddenDim, config.dim, noInit));
    this.activation = this.registerModule('activation', new Activation(config.activation));
  }

  forward(hidden: tf.Tensor3D, ctx?: ForwardContext): tf.Tensor3D {
    return tf.tidy(() => {
      const inner = this.activation.forward(this.lin1.forward(hidden, ctx), ctx);
      return this.dropout.forward(this.lin2.forward(inner, ctx), ctx) as tf.Tensor3D;
    });
  }
}

export class TransformerBlock extends Module {
  attention: DistilBertSelfAttention;
  sa_layer_norm: LayerNorm;
  ffn: FFN;
  output_layer_norm: LayerNorm;

  constructor(config: DistilBertConfig) {
    super();
    this.attention = this.registerModule('attention', new DistilBertSelfAttention(config));
    this.sa_layer_norm = this.registerModule('sa_layer_norm', new LayerNorm(config.dim, { eps: LAYER_NORM_EPS }));
    this.ffn = this.registerModule('ffn', new FFN(config));
    this.output_layer_norm = this.registerModule('output_layer_norm', new LayerNorm(config.dim, { eps: LAYER_NORM_EPS }));
  }

  forward(hidden: tf.Tensor3D, bias: tf.Tensor4D, ctx?: ForwardContext): tf.Tensor3D {
    return tf.tidy(() => {
      const attended = this.sa_layer_norm.forward(tf.add(this.attention.forward(hidden, bias, ctx), hidden), ctx) as tf.Tensor3D;
      return this.output_layer_norm.forward(tf.add(this.ffn.forward(attended, ctx), attended), ctx) as tf.Tensor3D;
    });
  }
}

/** transformers' DistilBERT `Transformer` (the encoder stack). */
export class Transformer extends Module {
  layer: ModuleList<TransformerBlock>;

  constructor(config: DistilBertConfig) {
    super();
    this.layer = this.registerModule('layer', new ModuleList(Array.from({ length: config.nLayers }, () => new TransformerBlock(config))));
  }

  /** The last layer's output and, if asked, the input followed by every layer's output. */
  forward(hidden: tf.Tensor3D, bias: tf.Tensor4D, outputHiddenStates: boolean, ctx?: ForwardContext): { last: tf.Tensor3D; all?: tf.Tensor3D[] } {
    return tf.tidy(() => {
      const all: tf.Tensor3D[] = [hidden];
      let h = hidden;
      for (const block of this.layer) {
        h = block.forward(h, bias, ctx);
        all.push(h);
      }
      return outputHiddenStates ? { last: h, all } : { last: h };
    });
  }
}

/** Draws DistilBERT's weights as its `_init_weights` does (sinusoidal position table when configured). */
function initDistilBertWeights(root: Module, embeddings: Embeddings, config: DistilBertConfig, seed: number | undefined): void {
  initWeightsLikeTransformers(root, config.initializerRange, seed);
  if (config.sinusoidalPosEmbds) {
    const table = sinusoidalEmbeddings(config.maxPositionEmbeddings, config.dim);
    embeddings.position_embeddings.weight.assign(table);
    table.dispose();
  }
}

/** transformers' `DistilBertModel`: embeddings and the transformer stack (no pooler). */
export class DistilBertModel extends PreTrainedEncoder<DistilBertConfig> {
  static readonly modelType = 'distilbert';
  static readonly baseModelPrefix = 'distilbert';
  static readonly ignoredCheckpointKeys = DISTILBERT_IGNORED_KEYS;

  embeddings: Embeddings;
  transformer: Transformer;
  readonly config: DistilBertConfig;

  constructor(config: DistilBertConfig | Record<string, unknown> = {}, options: { seed?: number; skipInit?: boolean } = {}) {
    super();
    this.config = resolveConfig(config);
    this.embeddings = this.registerModule('embeddings', new Embeddings(this.config));
    this.transformer = this.registerModule('transformer', new Transformer(this.config));
    if (!options.skipInit) initDistilBertWeights(this, this.embeddings, this.config, options.seed);
    this.eval();
  }

  forward(input: EncoderInput, ctx?: ForwardContext): EncoderOutput {
    return tf.tidy(() => {
      const ids = idsTensor(input.inputIds, 'inputIds');
      const [batch, seq] = ids.shape;
      const positionIds = input.positionIds ? checkedIds(input.positionIds, 'positionIds', batch, seq) : undefined;
      const mask = input.attentionMask ? checkedIds(input.attentionMask, 'attentionMask', batch, seq) : undefined;
      const bias = bidirectionalAttentionBias(seq, mask);
      const embedded = this.embeddings.forward(ids, positionIds, ctx);
      const { last, all } = this.transformer.forward(embedded, bias, input.outputHiddenStates ?? false, ctx);
      return { lastHiddenState: last, ...(all ? { hiddenStates: all } : {}) };
    });
  }
}

/**
 * transformers' `DistilBertForSequenceClassification`: first token's hidden state -> `pre_classifier` -> ReLU ->
 * dropout -> `classifier`.
 */
export class DistilBertForSequenceClassification extends PreTrainedForSequenceClassification<DistilBertConfig> {
  static readonly modelType = 'distilbert';
  static readonly baseModelPrefix = 'distilbert';
  static readonly ignoredCheckpointKeys = DISTILBERT_IGNORED_KEYS;

  distilbert: DistilBertModel;
  pre_classifier: Layer;
  classifier: Layer;
  dropout: Dropout;
  readonly config: DistilBertConfig;

  constructor(config: DistilBertConfig | Record<string, unknown> = {}, options: { seed?: number } = {}) {
    super();
    this.config = resolveConfig(config);
    this.distilbert = this.registerModule('distilbert', new DistilBertModel(this.config, { skipInit: true }));
    this.pre_classifier = this.registerModule('pre_classifier', new Linear(this.config.dim, this.config.dim, noInit));
    this.classifier = this.registerModule('classifier', new Linear(this.config.dim, this.config.numLabels, noInit));
    this.dropout = this.registerModule('dropout', new Dropout(this.config.seqClassifDropout));
    initDistilBertWeights(this, this.distilbert.embeddings, this.config, options.seed);
    this.eval();
  }

  get numLabels(): number {
    return this.config.numLabels;
  }

  forward(input: SequenceClassificationInput, ctx?: ForwardContext): SequenceClassificationOutput {
    return tf.tidy(() => {
      const { lastHiddenState, hiddenStates } = this.distilbert.forward(input, ctx);
      const [batch, , dim] = lastHiddenState.shape;
      const pooled = tf.slice(lastHiddenState, [0, 0, 0], [batch, 1, dim]).reshape([batch, dim]);
      const hidden = tf.relu(this.pre_classifier.forward(pooled, ctx));
      const logits = this.classifier.forward(this.dropout.forward(hidden, ctx), ctx) as tf.Tensor2D;
      const loss = input.labels !== undefined ? sequenceClassificationLoss(logits, input.labels, this.config.problemType) : undefined;
      return { logits, ...(loss ? { loss } : {}), ...(hiddenStates ? { hiddenStates } : {}) };
    });
  }
}

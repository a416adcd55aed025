import { tf } from '../../engine/tf.js';
import { Activation, Dropout, Embedding, LayerNorm, Linear, Module, ModuleList, Tanh } from '../../nn/index.js';
import type { ForwardContext, Layer } from '../../nn/index.js';
import { ShapeError } from '../../errors.js';
import { bidirectionalAttentionBias, causalAttentionBias, mergeHeads, scaledDotProductAttention, splitHeads } from '../attention.js';
import { checkedIds, initWeightsLikeTransformers, sequenceClassificationLoss } from '../encoder.js';
import { idsTensor } from '../inputs.js';
import { PreTrainedEncoder, PreTrainedForSequenceClassification } from '../pretrained.js';
import type { EncoderInput, EncoderOutput, SequenceClassificationInput, SequenceClassificationOutput } from '../pretrained.js';
import { parseBertConfig } from './config.js';
import type { BertConfig } from './config.js';

// Layers start empty (`noInit`): the top-level model draws every weight once, as transformers' `_init_weights`.
const noInit = { skipInit: true } as const;

// Module and attribute names follow transformers' modeling_bert.py exactly (`LayerNorm`, `self` included), so
// state-dict keys and PEFT target names map one to one.

/** Old checkpoints saved the (now non-persistent) `position_ids` / `token_type_ids` buffers; they hold no weights. */
const BERT_IGNORED_KEYS = [/(^|\.)embeddings\.position_ids$/, /(^|\.)embeddings\.token_type_ids$/];

function resolveConfig(config: BertConfig | Record<string, unknown>): BertConfig {
  return 'modelType' in config && config['modelType'] === 'bert' ? (config as BertConfig) : parseBertConfig(config as Record<string, unknown>);
}

export class BertEmbeddings extends Module {
  word_embeddings: Embedding;
  position_embeddings: Embedding;
  token_type_embeddings: Embedding;
  LayerNorm: LayerNorm;
  dropout: Dropout;
  /** Non-persistent buffers `[1, max_position_embeddings]`, as in transformers (not saved). */
  readonly position_ids: tf.Tensor2D;
  readonly token_type_ids: tf.Tensor2D;

  constructor(private readonly config: BertConfig) {
    super();
    const width = config.hiddenSize;
    const paddingIdx = config.padTokenId?.[0] ?? null;
    this.word_embeddings = this.registerModule('word_embeddings', new Embedding(config.vocabSize, width, { paddingIdx, ...noInit }));
    this.position_embeddings = this.registerModule('position_embeddings', new Embedding(config.maxPositionEmbeddings, width, noInit));
    this.token_type_embeddings = this.registerModule('token_type_embeddings', new Embedding(config.typeVocabSize, width, noInit));
    this.LayerNorm = this.registerModule('LayerNorm', new LayerNorm(width, { eps: config.layerNormEps }));
    this.dropout = this.registerModule('dropout', new Dropout(config.hiddenDropoutProb));
    const maxPos = config.maxPositionEmbeddings;
    this.position_ids = this.registerBuffer('position_ids', tf.range(0, maxPos, 1, 'int32').reshape([1, maxPos]), { persistent: false }) as tf.Tensor2D;
    this.token_type_ids = this.registerBuffer('token_type_ids', tf.zeros([1, maxPos], 'int32'), { persistent: false }) as tf.Tensor2D;
  }

  forward(ids: tf.Tensor2D, tokenTypeIds: tf.Tensor2D | undefined, positionIds: tf.Tensor2D | undefined, ctx?: ForwardContext): tf.Tensor3D {
    return tf.tidy(() => {
      const [batch, seq] = ids.shape;
      let positions = positionIds;
      if (!positions) {
        if (seq > this.config.maxPositionEmbeddings) {
          throw new ShapeError(`Sequence length ${seq} exceeds max_position_embeddings (${this.config.maxPositionEmbeddings}) of this BERT.`);
        }
        positions = tf.slice(this.position_ids, [0, 0], [1, seq]);
      }
      const types = tokenTypeIds ?? tf.zeros([batch, seq], 'int32');
      let embeddings = tf.add(this.word_embeddings.forward(ids, ctx), this.token_type_embeddings.forward(types, ctx));
      embeddings = tf.add(embeddings, this.position_embeddings.forward(positions, ctx));
      return this.dropout.forward(this.LayerNorm.forward(embeddings, ctx), ctx) as tf.Tensor3D;
    });
  }
}

export class BertSelfAttention extends Module {
  query: Layer;
  key: Layer;
  value: Layer;
  dropout: Dropout;
  private readonly scaling: number;

  constructor(private readonly config: BertConfig) {
    super();
    const width = config.hiddenSize;
    this.query = this.registerModule('query', new Linear(width, width, noInit));
    this.key = this.registerModule('key', new Linear(width, width, noInit));
    this.value = this.registerModule('value', new Linear(width, width, noInit));
    this.dropout = this.registerModule('dropout', new Dropout(config.attentionProbsDropoutProb));
    this.scaling = 1 / Math.sqrt(width / config.numAttentionHeads);
  }

  /** Returns the attended values `[batch, seq, hidden]` (before `attention.output.dense`, as transformers). */
  forward(hidden: tf.Tensor3D, bias: tf.Tensor4D, ctx?: ForwardContext): tf.Tensor3D {
    return tf.tidy(() => {
      const heads = this.config.numAttentionHeads;
      const q = splitHeads(this.query.forward(hidden, ctx), heads);
      const k = splitHeads(this.key.forward(hidden, ctx), heads);
      const v = splitHeads(this.value.forward(hidden, ctx), heads);
      const dropout = this.training && this.dropout.p > 0 ? (w: tf.Tensor) => this.dropout.forward(w, ctx) : undefined;
      return mergeHeads(scaledDotProductAttention(q, k, v, bias, this.scaling, dropout));
    });
  }
}

/** `dense` -> `dropout` -> `LayerNorm(x + residual)`: BERT's `BertSelfOutput` and `BertOutput`. */
class BertResidualOutput extends Module {
  dense: Layer;
  LayerNorm: LayerNorm;
  dropout: Dropout;

  constructor(config: BertConfig, inFeatures: number) {
    super();
    this.dense = this.registerModule('dense', new Linear(inFeatures, config.hiddenSize, noInit));
    this.LayerNorm = this.registerModule('LayerNorm', new LayerNorm(config.hiddenSize, { eps: config.layerNormEps }));
    this.dropout = this.registerModule('dropout', new Dropout(config.hiddenDropoutProb));
  }

  forward(hidden: tf.Tensor3D, residual: tf.Tensor3D, ctx?: ForwardContext): tf.Tensor3D {
    return tf.tidy(() => {
      const projected = this.dropout.forward(this.dense.forward(hidden, ctx), ctx);
      return this.LayerNorm.forward(tf.add(projected, residual), ctx) as tf.Tensor3D;
    });
  }
}

export class BertSelfOutput extends BertResidualOutput {
  constructor(config: BertConfig) {
    super(config, config.hiddenSize);
  }
}

export class BertOutput extends BertResidualOutput {
  constructor(config: BertConfig) {
    super(config, config.intermediateSize);
  }
}

export class BertAttention extends Module {
  self: BertSelfAttention;
  output: BertSelfOutput;

  constructor(config: BertConfig) {
    super();
    this.self = this.registerModule('self', new BertSelfAttention(config));
    this.output = this.registerModule('output', new BertSelfOutput(config));
  }

  forward(hidden: tf.Tensor3D, bias: tf.Tensor4D, ctx?: ForwardContext): tf.Tensor3D {
    return tf.tidy(() => this.output.forward(this.self.forward(hidden, bias, ctx), hidden, ctx));
  }
}

export class BertIntermediate extends Module {
  dense: Layer;
  intermediate_act_fn: Activation;

  constructor(config: BertConfig) {
    super();
    this.dense = this.registerModule('dense', new Linear(config.hiddenSize, config.intermediateSize, noInit));
    this.intermediate_act_fn = this.registerModule('intermediate_act_fn', new Activation(config.hiddenAct));
  }

  forward(hidden: tf.Tensor3D, ctx?: ForwardContext): tf.Tensor3D {
    return tf.tidy(() => this.intermediate_act_fn.forward(this.dense.forward(hidden, ctx), ctx) as tf.Tensor3D);
  }
}

export class BertLayer extends Module {
  attention: BertAttention;
  intermediate: BertIntermediate;
  output: BertOutput;

  constructor(config: BertConfig) {
    super();
    this.attention = this.registerModule('attention', new BertAttention(config));
    this.intermediate = this.registerModule('intermediate', new BertIntermediate(config));
    this.output = this.registerModule('output', new BertOutput(config));
  }

  forward(hidden: tf.Tensor3D, bias: tf.Tensor4D, ctx?: ForwardContext): tf.Tensor3D {
    return tf.tidy(() => {
      const attended = this.attention.forward(hidden, bias, ctx);
      return this.output.forward(this.intermediate.forward(attended, ctx), attended, ctx);
    });
  }
}

export class BertEncoder extends Module {
  layer: ModuleList<BertLayer>;

  constructor(config: BertConfig) {
    super();
    this.layer = this.registerModule('layer', new ModuleList(Array.from({ length: config.numHiddenLayers }, () => new BertLayer(config))));
  }

  /** The last layer's output and, if asked, the input followed by every layer's output. */
  forward(hidden: tf.Tensor3D, bias: tf.Tensor4D, outputHiddenStates: boolean, ctx?: ForwardContext): { last: tf.Tensor3D; all?: tf.Tensor3D[] } {
    return tf.tidy(() => {
      const all: tf.Tensor3D[] = [hidden];
      let h = hidden;
      for (const layer of this.layer) {
        h = layer.forward(h, bias, ctx);
        all.push(h);
      }
      return outputHiddenStates ? { last: h, all } : { last: h };
    });
  }
}

export class BertPooler extends Module {
  dense: Layer;
  activation: Tanh;

  constructor(config: BertConfig) {
    super();
    this.dense = this.registerModule('dense', new Linear(config.hiddenSize, config.hiddenSize, noInit));
    this.activation = this.registerModule('activation', new Tanh());
  }

  /** tanh(dense(hidden state of the first token)). */
  forward(hidden: tf.Tensor3D, ctx?: ForwardContext): tf.Tensor2D {
    return tf.tidy(() => {
      const [batch, , width] = hidden.shape;
      const first = tf.slice(hidden, [0, 0, 0], [batch, 1, width]).reshape([batch, width]);
      return this.activation.forward(this.dense.forward(first, ctx), ctx) as tf.Tensor2D;
    });
  }
}

export interface BertModelOptions {
  /** Seed for the random initialisation. */
  seed?: number;
  /** Build `pooler` (transformers' `add_pooling_layer`, default true). */
  addPoolingLayer?: boolean;
}

/** transformers' `BertModel`: embeddings, encoder and (by default) pooler. */
export class BertModel extends PreTrainedEncoder<BertConfig> {
  static readonly modelType = 'bert';
  static readonly baseModelPrefix = 'bert';
  static readonly ignoredCheckpointKeys = BERT_IGNORED_KEYS;

  embeddings: BertEmbeddings;
  encoder: BertEncoder;
  pooler: BertPooler | null;
  readonly config: BertConfig;

  constructor(config: BertConfig | Record<string, unknown> = {}, options: BertModelOptions & { skipInit?: boolean } = {}) {
    super();
    this.config = resolveConfig(config);
    this.embeddings = this.registerModule('embeddings', new BertEmbeddings(this.config));
    this.encoder = this.registerModule('encoder', new BertEncoder(this.config));
    this.pooler = options.addPoolingLayer ?? true ? this.registerModule('pooler', new BertPooler(this.config)) : null;
    if (!options.skipInit) initWeightsLikeTransformers(this, this.config.initializerRange, options.seed);
    this.eval();
  }

  forward(input: EncoderInput, ctx?: ForwardContext): EncoderOutput {
    return tf.tidy(() => {
      const ids = idsTensor(input.inputIds, 'inputIds');
      const [batch, seq] = ids.shape;
      const tokenTypeIds = input.tokenTypeIds ? checkedIds(input.tokenTypeIds, 'tokenTypeIds', batch, seq) : undefined;
      const positionIds = input.positionIds ? checkedIds(input.positionIds, 'positionIds', batch, seq) : undefined;
      const mask = input.attentionMask ? checkedIds(input.attentionMask, 'attentionMask', batch, seq) : undefined;
      const bias = this.config.isDecoder ? causalAttentionBias(seq, 0, mask) : bidirectionalAttentionBias(seq, mask);
      const embedded = this.embeddings.forward(ids, tokenTypeIds, positionIds, ctx);
      const { last, all } = this.encoder.forward(embedded, bias, input.outputHiddenStates ?? false, ctx);
      const poolerOutput = this.pooler ? this.pooler.forward(last, ctx) : undefined;
      return { lastHiddenState: last, ...(poolerOutput ? { poolerOutput } : {}), ...(all ? { hiddenStates: all } : {}) };
    });
  }
}

/** transformers' `BertForSequenceClassification`: pooled output -> dropout -> `classifier`. */
export class BertForSequenceClassification extends PreTrainedForSequenceClassification<BertConfig> {
  static readonly modelType = 'bert';
  static readonly baseModelPrefix = 'bert';
  static readonly ignoredCheckpointKeys = BERT_IGNORED_KEYS;

  bert: BertModel;
  dropout: Dropout;
  classifier: Layer;
  readonly config: BertConfig;

  constructor(config: BertConfig | Record<string, unknown> = {}, options: { seed?: number } = {}) {
    super();
    this.config = resolveConfig(config);
    this.bert = this.registerModule('bert', new BertModel(this.config, { skipInit: true }));
    this.dropout = this.registerModule('dropout', new Dropout(this.config.classifierDropout));
    this.classifier = this.registerModule('classifier', new Linear(this.config.hiddenSize, this.config.numLabels, noInit));
    initWeightsLikeTransformers(this, this.config.initializerRange, options.seed);
    this.eval();
  }

  get numLabels(): number {
    return this.config.numLabels;
  }

  forward(input: SequenceClassificationInput, ctx?: ForwardContext): SequenceClassificationOutput {
    return tf.tidy(() => {
      const { poolerOutput, hiddenStates } = this.bert.forward(input, ctx);
      const logits = this.classifier.forward(this.dropout.forward(poolerOutput!, ctx), ctx) as tf.Tensor2D;
      const loss = input.labels !== undefined ? sequenceClassificationLoss(logits, input.labels, this.config.problemType) : undefined;
      return { logits, ...(loss ? { loss } : {}), ...(hiddenStates ? { hiddenStates } : {}) };
    });
  }
}

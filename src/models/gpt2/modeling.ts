import { tf } from '../../engine/tf.js';
import { Activation, Conv1D, Dropout, Embedding, LayerNorm, Linear, Module, ModuleList } from '../../nn/index.js';
import { normal } from '../../nn/init.js';
import type { ForwardContext, Layer } from '../../nn/index.js';
import type { KVCache } from '../../generation/cache.js';
import { causalAttentionBias, mergeHeads, scaledDotProductAttention, splitHeads } from '../attention.js';
import { idsTensor } from '../inputs.js';
import { PreTrainedCausalLM } from '../pretrained.js';
import type { CausalDecoder } from '../pretrained.js';
import type { CausalLMInput } from '../outputs.js';
import { parseGPT2Config } from './config.js';
import type { GPT2Config } from './config.js';

// Layers start empty (`noInit`): `GPT2LMHeadModel.initWeights` draws every weight once, as transformers does.
const noInit = { skipInit: true } as const;

// Module and attribute names follow transformers' modeling_gpt2.py exactly (snake_case included), so state-dict
// keys and PEFT target names map one to one.

export class GPT2Attention extends Module {
  c_attn: Layer;
  c_proj: Layer;
  attn_dropout: Dropout;
  resid_dropout: Dropout;
  private readonly scale: number;

  constructor(
    private readonly config: GPT2Config,
    readonly layerIdx: number,
  ) {
    super();
    const width = config.nEmbd;
    this.c_attn = this.registerModule('c_attn', new Conv1D(3 * width, width, noInit));
    this.c_proj = this.registerModule('c_proj', new Conv1D(width, width, noInit));
    this.attn_dropout = this.registerModule('attn_dropout', new Dropout(config.attnPdrop));
    this.resid_dropout = this.registerModule('resid_dropout', new Dropout(config.residPdrop));
    const headDim = width / config.nHead;
    let scale = config.scaleAttnWeights ? 1 / Math.sqrt(headDim) : 1;
    if (config.scaleAttnByInverseLayerIdx) scale /= layerIdx + 1;
    this.scale = scale;
  }

  forward(hidden: tf.Tensor3D, bias: tf.Tensor4D, cache: KVCache | undefined, ctx?: ForwardContext): tf.Tensor3D {
    return tf.tidy(() => {
      const width = this.config.nEmbd;
      const [q, k, v] = tf.split(this.c_attn.forward(hidden, ctx), [width, width, width], -1) as [tf.Tensor, tf.Tensor, tf.Tensor];
      let key = splitHeads(k, this.config.nHead);
      let value = splitHeads(v, this.config.nHead);
      if (cache) ({ key, value } = cache.update(this.layerIdx, key, value));
      const dropout = this.training && this.attn_dropout.p > 0 ? (w: tf.Tensor) => this.attn_dropout.forward(w) : undefined;
      const attended = scaledDotProductAttention(splitHeads(q, this.config.nHead), key, value, bias, this.scale, dropout);
      return this.resid_dropout.forward(this.c_proj.forward(mergeHeads(attended), ctx)) as tf.Tensor3D;
    });
  }
}

export class GPT2MLP extends Module {
  c_fc: Layer;
  c_proj: Layer;
  act: Activation;
  dropout: Dropout;

  constructor(config: GPT2Config) {
    super();
    this.c_fc = this.registerModule('c_fc', new Conv1D(config.nInner, config.nEmbd, noInit));
    this.c_proj = this.registerModule('c_proj', new Conv1D(config.nEmbd, config.nInner, noInit));
    this.act = this.registerModule('act', new Activation(config.activationFunction));
    this.dropout = this.registerModule('dropout', new Dropout(config.residPdrop));
  }

  forward(hidden: tf.Tensor, ctx?: ForwardContext): tf.Tensor {
    return tf.tidy(() => this.dropout.forward(this.c_proj.forward(this.act.forward(this.c_fc.forward(hidden, ctx)), ctx)));
  }
}

export class GPT2Block extends Module {
  ln_1: LayerNorm;
  attn: GPT2Attention;
  ln_2: LayerNorm;
  mlp: GPT2MLP;

  constructor(config: GPT2Config, layerIdx: number) {
    super();
    this.ln_1 = this.registerModule('ln_1', new LayerNorm(config.nEmbd, { eps: config.layerNormEpsilon }));
    this.attn = this.registerModule('attn', new GPT2Attention(config, layerIdx));
    this.ln_2 = this.registerModule('ln_2', new LayerNorm(config.nEmbd, { eps: config.layerNormEpsilon }));
    this.mlp = this.registerModule('mlp', new GPT2MLP(config));
  }

  forward(hidden: tf.Tensor3D, bias: tf.Tensor4D, cache: KVCache | undefined, ctx?: ForwardContext): tf.Tensor3D {
    return tf.tidy(() => {
      const afterAttn = tf.add(hidden, this.attn.forward(this.ln_1.forward(hidden) as tf.Tensor3D, bias, cache, ctx));
      return tf.add(afterAttn, this.mlp.forward(this.ln_2.forward(afterAttn), ctx)) as tf.Tensor3D;
    });
  }
}

export class GPT2Model extends Module {
  wte: Embedding;
  wpe: Embedding;
  drop: Dropout;
  h: ModuleList<GPT2Block>;
  ln_f: LayerNorm;

  constructor(readonly config: GPT2Config) {
    super();
    this.wte = this.registerModule('wte', new Embedding(config.vocabSize, config.nEmbd, noInit));
    this.wpe = this.registerModule('wpe', new Embedding(config.nPositions, config.nEmbd, noInit));
    this.drop = this.registerModule('drop', new Dropout(config.embdPdrop));
    this.h = this.registerModule('h', new ModuleList(Array.from({ length: config.nLayer }, (_, i) => new GPT2Block(config, i))));
    this.ln_f = this.registerModule('ln_f', new LayerNorm(config.nEmbd, { eps: config.layerNormEpsilon }));
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
      if (past + seq > this.config.nPositions) {
        throw new RangeError(`Sequence length ${past + seq} exceeds n_positions (${this.config.nPositions}) of this GPT-2.`);
      }
      const positions = input.positionIds
        ? idsTensor(input.positionIds, 'positionIds')
        : tf.add(tf.range(past, past + seq, 1, 'int32').reshape([1, seq]), tf.zeros([batch, 1], 'int32'));
      const mask = input.attentionMask ? idsTensor(input.attentionMask, 'attentionMask') : undefined;
      const bias = causalAttentionBias(seq, past, mask);
      let hidden = this.drop.forward(tf.add(this.wte.forward(ids), this.wpe.forward(positions))) as tf.Tensor3D;
      const hiddenStates: tf.Tensor3D[] = [];
      for (const block of this.h) {
        if (input.outputHiddenStates) hiddenStates.push(hidden);
        hidden = block.forward(hidden, bias, cache, ctx);
      }
      hidden = this.ln_f.forward(hidden) as tf.Tensor3D;
      if (!input.outputHiddenStates) return { lastHiddenState: hidden };
      hiddenStates.push(hidden);
      return { lastHiddenState: hidden, hiddenStates };
    });
  }
}

/** GPT-2 with its language-modelling head (`lm_head`, tied to `transformer.wte` unless the config says not). */
export class GPT2LMHeadModel extends PreTrainedCausalLM<GPT2Config> {
  static readonly modelType = 'gpt2';
  /** Keys that old checkpoints carry and that hold no learnt values (transformers ignores them too). */
  static readonly ignoredCheckpointKeys = [/\.attn\.masked_bias$/, /\.attn\.bias$/];
  static readonly baseModelPrefix = 'transformer';

  transformer: GPT2Model;
  lm_head: Linear;
  readonly config: GPT2Config;

  constructor(config: GPT2Config | Record<string, unknown> = {}, options: { seed?: number } = {}) {
    super();
    this.config = 'modelType' in config ? (config as GPT2Config) : parseGPT2Config(config);
    this.transformer = this.registerModule('transformer', new GPT2Model(this.config));
    this.lm_head = this.registerModule('lm_head', new Linear(this.config.nEmbd, this.config.vocabSize, { bias: false, ...noInit }));
    if (this.config.tieWordEmbeddings) this.lm_head.tieParameter('weight', this.transformer.wte.weight);
    this.initWeights(options.seed);
    this.eval();
  }

  get numLayers(): number {
    return this.config.nLayer;
  }

  protected get decoder(): CausalDecoder {
    return this.transformer;
  }

  /** transformers' `_init_weights`: N(0, 0.02) weights, zero biases, unit norms, residual projections scaled. */
  private initWeights(seed?: number): void {
    const std = typeof this.config.raw['initializer_range'] === 'number' ? this.config.raw['initializer_range'] : 0.02;
    let next = seed;
    const draw = (shape: number[], scale: number) => normal(shape, 0, scale, next === undefined ? {} : { seed: next++ });
    const residualStd = std / Math.sqrt(2 * this.config.nLayer);
    for (const [name, param] of this.namedParameters()) {
      if (name.endsWith('.bias')) continue; // zeros already
      if (name.includes('ln_')) continue; // ones already
      const scale = /c_proj\.weight$/.test(name) ? residualStd : std;
      const value = draw(param.shape, scale);
      param.assign(value);
      value.dispose();
    }
  }
}

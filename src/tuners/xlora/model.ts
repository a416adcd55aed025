import { tf } from '../../engine/tf.js';
import { countTrainableParameters, trainableParametersLine } from '../trainable.js';
import { stopGradient } from '../../engine/ops.js';
import { KVCache } from '../../generation/cache.js';
import { generate } from '../../generation/generate.js';
import type { GenerationOptions } from '../../generation/config.js';
import type { ForwardContext } from '../../nn/context.js';
import { Module } from '../../nn/module.js';
import type { CausalLMInput, CausalLMOutput, IdsInput } from '../../models/outputs.js';
import type { PreTrainedCausalLM } from '../../models/pretrained.js';
import { ConfigError, ShapeError } from '../../errors.js';
import { LoraLayer } from '../lora/layer.js';
import type { LoraModel } from '../lora/model.js';
import { XLoraClassifier } from './classifier.js';
import type { XLoraConfig } from './config.js';
import type { XLoraLayerState } from './layer.js';
import { effectiveScalings, releaseStackedExperts } from './layer.js';
import { ScalingsLog } from './scalings-log.js';

/** Knobs that change behaviour at run time without touching the loaded config (saved with the model). */
export interface XLoraRuntimeOptions {
  topKLora: number | null;
  globalScalingWeight: number;
  scalingPassValue: number;
  useTrainableAdapters: boolean;
}

export interface XLoraGenerateOptions extends GenerationOptions {
  /**
   * mistral.rs's non-granular mode (approximate, opt-in): after this many generated tokens the scalings are
   * frozen and the scaling pass is skipped, so each further token costs one forward instead of two.
   */
  nonGranularAfter?: number;
}

/**
 * KV caches for X-LoRA decoding: this cache holds the real pass's keys/values, `scalingPass` those of the
 * scaling pass, so each new token costs two single-token forwards with outputs equal to full recomputation.
 */
export class XLoraCache extends KVCache {
  readonly scalingPass = new KVCache();
  /** Non-granular mode: decode steps seen, and the scalings frozen after `nonGranularAfter` of them. */
  decodeSteps = 0;
  frozenScalings: tf.Tensor4D | undefined;

  constructor(readonly nonGranularAfter?: number) {
    super();
  }

  override reserve(length: number): void {
    super.reserve(length);
    this.scalingPass.reserve(length);
  }

  override reorder(indices: readonly number[]): void {
    super.reorder(indices);
    this.scalingPass.reorder(indices);
    if (this.frozenScalings) {
      const old = this.frozenScalings;
      this.frozenScalings = tf.keep(tf.tidy(() => tf.gather(old, tf.tensor1d(Array.from(indices), 'int32'), 0)));
      old.dispose();
    }
  }

  override dispose(): void {
    super.dispose();
    this.scalingPass.dispose();
    this.frozenScalings?.dispose();
    this.frozenScalings = undefined;
  }
}

/**
 * X-LoRA (spec §1–§9): frozen LoRA experts in `lora_model` mixed per token and per layer by the scalings that
 * `internal_xlora_classifier` predicts from a first, scaling pass. Only the classifier trains unless trainable
 * adapters are switched on. Module names follow PEFT's `XLoraModel`, so the classifier saves as
 * `base_model.internal_xlora_classifier.layers.N.*`.
 */
export class XLoraModel extends Module {
  readonly lora_model: LoraModel;
  readonly internal_xlora_classifier: XLoraClassifier;
  readonly scalingsLog = new ScalingsLog();
  /** Expert adapter names; index i = expert i. */
  readonly experts: readonly string[];
  private readonly layerIndex: Map<LoraLayer, number>;
  private runtime: XLoraRuntimeOptions;
  private latest: tf.Tensor4D | undefined;
  private printNext = 0;

  constructor(
    loraModel: LoraModel,
    readonly config: XLoraConfig,
    experts: readonly string[],
    options: { seed?: number } = {},
  ) {
    super();
    this.lora_model = this.registerModule('lora_model', loraModel);
    this.experts = [...experts];
    this.layerIndex = new Map();
    for (const [, module] of loraModel.model.namedModules()) {
      if (module instanceof LoraLayer) {
        if (module.kind === 'conv1d' || module.kind === 'conv2d') {
          throw new ConfigError([{ code: 'invalid_value', path: ['adapters'], message: 'X-LoRA does not support convolution experts (a [B, S, 1] scaling cannot apply to channels-first maps)' }], 'X-LoRA');
        }
        this.layerIndex.set(module, this.layerIndex.size);
      }
    }
    const hiddenSize = config.hiddenSize ?? hiddenSizeOf(this.inner);
    this.internal_xlora_classifier = this.registerModule(
      'internal_xlora_classifier',
      new XLoraClassifier({
        hiddenSize,
        numExperts: experts.length,
        numLayers: this.layerIndex.size,
        depth: config.xloraDepth,
        size: config.xloraSize,
        layerwise: config.layerwiseScalings,
        enableSoftmax: config.enableSoftmax,
        temperature: config.softmaxTemperature,
        dropoutP: config.xloraDropoutP,
        useBias: config.useBias,
        layout: config.classifierLayout,
        reluAndDropout: config.enableReluAndDropout,
        seed: options.seed,
      }),
    );
    this.runtime = {
      topKLora: config.topKLora,
      globalScalingWeight: config.globalScalingWeight,
      scalingPassValue: config.scalingPassValue,
      useTrainableAdapters: config.useTrainableAdapters,
    };
    this.lora_model.setAdapter([...experts]);
    this.applyTrainability();
  }

  /** The user's causal LM (with the experts' LoRA layers in place). */
  get inner(): PreTrainedCausalLM {
    return this.lora_model.model as PreTrainedCausalLM;
  }

  /** L: number of LoRA-wrapped layers, i.e. the scalings' layer axis. */
  get numLayers(): number {
    return this.layerIndex.size;
  }

  get generationConfig(): GenerationOptions {
    return this.inner.generationConfig;
  }

  /** The config as it would be saved now: the loaded one with the current runtime options. */
  currentConfig(): XLoraConfig {
    return this.config.with({ ...this.runtime, hiddenSize: this.internal_xlora_classifier.spec.hiddenSize });
  }

  /** Both passes: scalings from the scaling pass and the classifier, then the real pass mixing the experts. */
  forward(input: CausalLMInput, ctx?: ForwardContext): CausalLMOutput {
    if (input.pastKeyValues && !(input.pastKeyValues instanceof XLoraCache)) {
      throw new ShapeError('X-LoRA needs an XLoraCache (one cache per pass): create one with model.createCache().');
    }
    const cache = (input.pastKeyValues as XLoraCache | undefined) ?? (input.useCache ? this.createCache() : undefined);
    const scalings = this.computeScalings(input, cache, ctx);
    const effective = effectiveScalings(scalings, this.runtime.topKLora, this.config.enableSoftmaxTopk);
    try {
      const out = this.inner.forward({ ...input, pastKeyValues: cache, useCache: false }, { ...ctx, xlora: this.layerState('mix', scalings, effective) });
      return cache ? { ...out, pastKeyValues: cache } : out;
    } finally {
      tf.dispose([scalings, effective]);
    }
  }

  createCache(nonGranularAfter?: number): XLoraCache {
    return new XLoraCache(nonGranularAfter);
  }

  /** Generation with one KV cache per pass (or full recomputation with `useCache: false`). */
  generate(inputIds: IdsInput, options: XLoraGenerateOptions = {}, ctx?: ForwardContext): Promise<number[][]> {
    const { nonGranularAfter, ...rest } = options;
    const defaults = this.inner.generationConfig;
    const eos = defaults.eosTokenId ?? this.inner.config.eosTokenId;
    const pad = defaults.padTokenId ?? this.inner.config.padTokenId?.[0];
    return generate(
      { forward: (i, c) => this.forward(i, c), generationConfig: defaults, createCache: () => this.createCache(nonGranularAfter) },
      inputIds,
      { ...(eos !== undefined ? { eosTokenId: eos } : {}), ...(pad !== undefined ? { padTokenId: pad } : {}), ...rest },
      ctx,
    );
  }

  /** Saves in PEFT's layout with each expert in its own subfolder, so the folder is self-contained. */
  async savePretrained(dir: string): Promise<void> {
    const { saveXLora } = await import('./io.js');
    await saveXLora(this, dir);
  }

  /** Runs `fn` with the experts off: the plain base model. */
  disableAdapter<T>(fn: () => T): T {
    this.lora_model.enableAdapters(false);
    const restore = () => this.lora_model.enableAdapters(true);
    let result: T;
    try {
      result = fn();
    } catch (error) {
      restore();
      throw error;
    }
    if (result instanceof Promise) return result.finally(restore) as T;
    restore();
    return result;
  }

  // Scalings log and inspection ------------------------------------------------------------------------------

  enableScalingsLogging(): void {
    this.scalingsLog.enable();
  }

  disableScalingsLogging(): void {
    this.scalingsLog.disable();
  }

  clearScalingsLog(): void {
    this.scalingsLog.clear();
  }

  getScalingsLog(): tf.Tensor[] {
    return this.scalingsLog.entries();
  }

  /** Writes the log as `.npy` files the original `load_scalings_log` reads (bucketed by sequence length). */
  flushLogScalings(path: string): Promise<void> {
    return this.scalingsLog.flush(path);
  }

  /** The scalings of the last forward, `[B, S, L, C]` (a copy: dispose it). */
  getLatestScalings(): tf.Tensor4D | undefined {
    return this.latest?.clone();
  }

  /** Prints the next `n` scalings predictions. */
  printScalingsPredictions(n: number): void {
    this.printNext = n;
  }

  // Runtime options (PEFT's setters) ---------------------------------------------------------------------------

  setTopkLora(value: number | null): void {
    // As XLoraConfig validates it: an integer in 1..C (a larger k could not be saved).
    if (value !== null && (!Number.isInteger(value) || value < 1 || value > this.experts.length)) {
      throw new ConfigError([{ code: 'invalid_value', path: ['topKLora'], message: `must be null or an integer in 1..${this.experts.length} (the number of experts), got ${value}` }], 'X-LoRA');
    }
    this.runtime = { ...this.runtime, topKLora: value };
  }

  getTopkLora(): number | null {
    return this.runtime.topKLora;
  }

  setGlobalScalingWeight(weight: number): void {
    this.runtime = { ...this.runtime, globalScalingWeight: weight };
  }

  getGlobalScalingWeight(): number {
    return this.runtime.globalScalingWeight;
  }

  /** `null` means 1 / C (every expert equally), as the original's `set_scaling_pass_value(None)`. */
  setScalingPassValue(value: number | null): void {
    this.runtime = { ...this.runtime, scalingPassValue: value ?? 1 / this.experts.length };
  }

  getScalingPassValue(): number {
    return this.runtime.scalingPassValue;
  }

  setUseTrainableAdapters(value: boolean): void {
    this.runtime = { ...this.runtime, useTrainableAdapters: value };
    this.applyTrainability();
  }

  getUseTrainableAdapters(): boolean {
    return this.runtime.useTrainableAdapters;
  }

  /** `[trainable, all]` parameter counts. */
  getNbTrainableParameters(): [number, number] {
    return countTrainableParameters(this);
  }

  /** Prints (and returns) PEFT's line: `trainable params: 1,234 || all params: 5,678 || trainable%: 21.7330`. */
  printTrainableParameters(): string {
    const line = trainableParametersLine(this);
    console.log(line);
    return line;
  }


  override dispose(): void {
    for (const layer of this.layerIndex.keys()) releaseStackedExperts(layer);
    this.latest?.dispose();
    this.latest = undefined;
    this.scalingsLog.clear();
    super.dispose();
  }

  // Internals ----------------------------------------------------------------------------------------------------

  /** Only the classifier trains, plus the experts when trainable adapters are on. */
  private applyTrainability(): void {
    this.lora_model.model.requiresGrad(false);
    if (this.runtime.useTrainableAdapters) {
      for (const [, layer] of this.lora_model.tunerLayers()) layer.setAdapter([...this.experts], { trainable: true });
    }
    this.internal_xlora_classifier.requiresGrad(true);
  }

  private layerState(mode: XLoraLayerState['mode'], scalings?: tf.Tensor4D, effective?: tf.Tensor4D): XLoraLayerState {
    return {
      mode,
      dummyValue: this.runtime.scalingPassValue,
      ...(scalings ? { scalings } : {}),
      ...(effective ? { effective } : {}),
      layerIndex: this.layerIndex,
      experts: this.experts,
      topK: this.runtime.topKLora,
      softmaxTopk: this.config.enableSoftmaxTopk,
      globalScalingWeight: this.runtime.globalScalingWeight,
    };
  }

  /** The scaling pass (plain base model when its value is 0) and the classifier: `[B, S, L, C]`, caller disposes. */
  private computeScalings(input: CausalLMInput, cache: XLoraCache | undefined, ctx?: ForwardContext): tf.Tensor4D {
    const seq = (input.inputIds instanceof tf.Tensor ? input.inputIds.shape[1] : input.inputIds[0]?.length) ?? 0;
    const decoding = cache !== undefined && cache.getSeqLength() > 0 && seq === 1;
    if (decoding && cache.frozenScalings) return cache.frozenScalings.clone();
    const mode = this.runtime.scalingPassValue === 0 ? 'base' : 'dummy';
    // PEFT runs the whole model and keeps hidden_states[-1]; the LM head's logits are never used, so skip them.
    const pass = this.inner.forwardHidden(
      {
        inputIds: input.inputIds,
        ...(input.attentionMask ? { attentionMask: input.attentionMask } : {}),
        ...(input.positionIds ? { positionIds: input.positionIds } : {}),
        outputHiddenStates: true,
        ...(cache ? { pastKeyValues: cache.scalingPass } : {}),
      },
      { ...ctx, xlora: this.layerState(mode) },
    );
    const hidden = pass.hiddenStates!.at(-1)!;
    for (const h of pass.hiddenStates!.slice(0, -1)) h.dispose();
    if (pass.lastHiddenState !== hidden) pass.lastHiddenState.dispose();
    const scalings = tf.tidy(() => this.internal_xlora_classifier.forward(stopGradient(hidden)));
    hidden.dispose();
    this.record(scalings);
    if (decoding && cache.nonGranularAfter !== undefined && ++cache.decodeSteps >= cache.nonGranularAfter) {
      cache.frozenScalings = tf.keep(scalings.clone());
    }
    return scalings;
  }

  private record(scalings: tf.Tensor4D): void {
    this.latest?.dispose();
    this.latest = tf.keep(scalings.clone());
    this.scalingsLog.push(scalings);
    if (this.printNext > 0) {
      this.printNext--;
      console.log(`Scalings prediction [${scalings.shape.join(', ')}]:`, scalings.arraySync());
    }
  }
}

function hiddenSizeOf(model: PreTrainedCausalLM): number {
  const raw = model.config.raw;
  const h = raw['hidden_size'] ?? raw['n_embd'] ?? raw['d_model'];
  if (typeof h !== 'number') {
    throw new ConfigError([{ code: 'missing', path: ['hidden_size'], message: 'set hiddenSize in the X-LoRA config: the model config has no hidden_size' }], 'X-LoRA config');
  }
  return h;
}

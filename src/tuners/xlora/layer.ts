// How a LoRA layer mixes its experts under X-LoRA (spec §5): for layer ℓ,
//   y = base(x) + Σ_i B_i A_i dropout_i(x ⊙ s_{ℓ,i}) · γ_i · g
// with s the classifier's scalings after per-layer top-k / softmax-top-k, γ_i the expert's own alpha/r and g
// the global scaling weight. The scalings reach the layer through the forward context, never through hooks.
import { tf } from '../../engine/tf.js';
import { Identity } from '../../nn/container.js';
import type { LoraLayer } from '../lora/layer.js';
import type { FusedProjection } from '../../engine/fused/decoder-stack.js';

/** Per-call X-LoRA state a LoRA layer reads from `ctx.xlora`. */
export interface XLoraLayerState {
  /** 'base': the scaling pass with value 0 (every LoRA branch skipped, exactly the base model). */
  readonly mode: 'base' | 'dummy' | 'mix';
  /** Dummy scaling value for mode 'dummy'. */
  readonly dummyValue: number;
  /** `[B, S, L, C]` scalings for mode 'mix', as the classifier predicted them. */
  readonly scalings?: tf.Tensor4D;
  /** The same after per-layer top-k / softmax-top-k ({@link effectiveScalings}): what the layers mix with. */
  readonly effective?: tf.Tensor4D;
  /** Layer index ℓ of each X-LoRA layer (pre-order over LoRA-wrapped modules). */
  readonly layerIndex: ReadonlyMap<LoraLayer, number>;
  /** Expert adapter names in index order. */
  readonly experts: readonly string[];
  readonly topK: number | null;
  readonly softmaxTopk: boolean;
  readonly globalScalingWeight: number;
}

declare module '../../nn/context.js' {
  interface ForwardContext {
    /** Set by XLoraModel for the two passes of a forward. */
    readonly xlora?: XLoraLayerState;
  }
}

/** Per-layer top-k (no renormalisation) and per-token softmax over the kept experts, as PEFT (PR #2793). */
export function processLayerScalings(slice: tf.Tensor3D, topK: number | null, softmaxTopk: boolean): tf.Tensor3D {
  return tf.tidy(() => {
    let s: tf.Tensor3D = slice;
    const experts = slice.shape[2];
    let keep: tf.Tensor | undefined;
    if (topK !== null && topK < experts) {
      const { indices } = tf.topk(s, topK);
      keep = tf.sum(tf.oneHot(indices, experts), -2);
      s = tf.mul(s, keep);
    }
    if (softmaxTopk) {
      const mask = keep ?? tf.cast(tf.notEqual(s, 0), 'float32');
      const masked = tf.add(s, tf.mul(tf.sub(1, mask), -1e30));
      s = tf.mul(tf.softmax(masked, -1), mask) as tf.Tensor3D;
    }
    return s;
  });
}

/** {@link processLayerScalings} for every layer at once: `[B, S, L, C]`, each (token, layer) row on its own. */
export function effectiveScalings(scalings: tf.Tensor4D, topK: number | null, softmaxTopk: boolean): tf.Tensor4D {
  if (topK === null && !softmaxTopk) return scalings.clone();
  return tf.tidy(() => {
    const [batch, seq, layers, experts] = scalings.shape;
    const rows = tf.reshape(scalings, [batch, seq * layers, experts]) as tf.Tensor3D;
    return tf.reshape(processLayerScalings(rows, topK, softmaxTopk), scalings.shape) as tf.Tensor4D;
  });
}

/** This layer's `[B, S, C]` scalings: the dummy value (processed) in the scaling pass, else its slice of `effective`. */
function layerScalings(state: XLoraLayerState, index: number, lead: readonly number[]): tf.Tensor3D {
  const shape = [...lead, state.experts.length] as [number, number, number];
  if (state.mode === 'dummy') return processLayerScalings(tf.fill(shape, state.dummyValue) as tf.Tensor3D, state.topK, state.softmaxTopk);
  return tf.reshape(tf.slice(state.effective!, [0, 0, index, 0], [-1, -1, 1, -1]), shape) as tf.Tensor3D;
}

/** The X-LoRA forward of one LoRA layer (Linear, GPT-2 Conv1D or Embedding). */
export function xloraLayerForward(layer: LoraLayer, x: tf.Tensor, state: XLoraLayerState): tf.Tensor {
  const index = state.layerIndex.get(layer);
  if (index === undefined || state.mode === 'base') return layer.base_layer.forward(x);
  return tf.tidy(() => {
    const base = layer.base_layer.forward(x);
    const isEmbedding = layer.kind === 'embedding';
    const lead = isEmbedding ? x.shape : x.shape.slice(0, -1); // [B, S]
    const scalings = layerScalings(state, index, lead);
    const present = state.experts.map((name, i) => ({ name, i })).filter(({ name }) => layer.hasAdapter(name));
    const factor = (i: number, name: string) => tf.mul(tf.slice(scalings, [0, 0, i], [-1, -1, 1]), layer.scaling.get(name)! * state.globalScalingWeight);
    if (isEmbedding) {
      let out = base;
      for (const { name, i } of present) {
        const afterA = tf.gather(tf.transpose(layer.lora_embedding_A.get(name)!), tf.cast(x, 'int32'));
        out = tf.add(out, tf.matMul(tf.mul(afterA, factor(i, name)), layer.lora_embedding_B.get(name)!, false, true));
      }
      return out;
    }
    const dropoutActive = layer.training && present.some(({ name }) => !(layer.lora_dropout.get(name) instanceof Identity));
    // The stacked form has no place for lora_B biases (PEFT adds them unscaled by s): those layers take the loop.
    const biased = present.some(({ name }) => layer.lora_B.get(name)!.bias !== null);
    if (!dropoutActive && !biased && present.length > 1) return tf.add(base, stackedExperts(layer, x, present, scalings, state.globalScalingWeight));
    let out = base;
    for (const { name, i } of present) {
      const input = layer.lora_dropout.get(name)!.forward(tf.mul(x, tf.slice(scalings, [0, 0, i], [-1, -1, 1])));
      out = tf.add(out, tf.mul(layer.loraBranch(input, name), layer.scaling.get(name)! * state.globalScalingWeight));
    }
    return out;
  });
}

/**
 * {@link xloraLayerForward} as a fused-kernel projection: the base W, b plus the stacked experts, each column
 * scaled per token by its expert's scaling times γ·g. Undefined where the forward takes the per-expert loop.
 */
export function xloraFusedProjection(layer: LoraLayer, base: FusedProjection, lead: readonly number[], state: XLoraLayerState): FusedProjection | undefined {
  const index = state.layerIndex.get(layer);
  if (index === undefined || state.mode === 'base') return base;
  const present = state.experts.map((name, i) => ({ name, i })).filter(({ name }) => layer.lora_A.has(name));
  if (present.length === 0) return base;
  const dropoutActive = layer.training && present.some(({ name }) => !(layer.lora_dropout.get(name) instanceof Identity));
  if (dropoutActive || present.some(({ name }) => layer.lora_B.get(name)!.bias !== null)) return undefined;
  if (state.mode === 'mix' && !tf.util.arraysEqual(state.effective!.shape.slice(0, 2), [...lead])) return undefined;
  const { a, b, owner, gammaValues } = stackedFactors(layer, present, state.globalScalingWeight);
  // Column j of x Aᵀ is scaled by its expert's scaling times γ·g, per token: a few numbers per token, computed
  // here rather than in half a dozen small tensor ops per layer and token.
  const values = scalingValues(state);
  const width = owner.length;
  if (state.mode === 'dummy') {
    // The dummy scalings are the same for every token: one row serves them all.
    return { ...base, lowRank: { a, b, scale: tf.tensor3d(owner.map((i, j) => values[i]! * gammaValues[j]!), [1, 1, width]) } };
  }
  const [, , layers, experts] = state.effective!.shape;
  const tokens = lead[0]! * lead[1]!;
  const scale = new Float32Array(tokens * width);
  for (let n = 0; n < tokens; n++) {
    const row = (n * layers + index) * experts;
    for (let j = 0; j < width; j++) scale[n * width + j] = values[row + owner[j]!]! * gammaValues[j]!;
  }
  return { ...base, lowRank: { a, b, scale: tf.tensor3d(scale, [lead[0]!, lead[1]!, width]) } };
}

const scalingValuesCache = new WeakMap<object, Float32Array | Int32Array | Uint8Array>();

/**
 * The values the fused path mixes with, read once per pass: the effective scalings `[B, S, L, C]` of the real
 * pass, or the scaling pass's one processed dummy row `[C]`.
 */
function scalingValues(state: XLoraLayerState): Float32Array | Int32Array | Uint8Array {
  const key = state.mode === 'dummy' ? state : state.effective!;
  let values = scalingValuesCache.get(key);
  if (values === undefined) {
    if (state.mode === 'dummy') {
      const row = layerScalings(state, 0, [1, 1]);
      values = row.dataSync();
      row.dispose();
    } else {
      values = state.effective!.dataSync();
    }
    scalingValuesCache.set(key, values);
  }
  return values;
}

/** Stacked expert factors of a layer, kept while the experts are frozen and unchanged (X-LoRA's default). */
interface StackedFactors {
  /** The weights' data ids when stacked: an assign (loading, merging) replaces them and the stack is rebuilt. */
  readonly sources: readonly object[];
  readonly a: tf.Tensor;
  readonly b: tf.Tensor;
  /** [C, Σr]: γ_i·g where column j belongs to expert i, else 0, so `scalings @ columnScales` scales each column. */
  readonly columnScales: tf.Tensor;
  /** γ·g per stacked column, to notice a changed global scaling weight. */
  readonly gammaValues: readonly number[];
  /** The expert index of each stacked column. */
  readonly owner: readonly number[];
}

const stackedCache = new WeakMap<LoraLayer, StackedFactors>();

function dataIdOf(v: tf.Variable): object {
  return (v as unknown as { dataId: object }).dataId;
}

/**
 * [A_1; ...; A_C], [B_1 ... B_C] and each stacked column's expert and γ·g. Rebuilt on every call while any expert
 * trains (the concat must be on the tape), otherwise cached: concatenating them was a tenth of a decoding step.
 */
function stackedFactors(layer: LoraLayer, present: { name: string; i: number }[], g: number): StackedFactors {
  const weights = present.flatMap(({ name }) => [layer.lora_A.get(name)!.weight, layer.lora_B.get(name)!.weight]);
  const experts = Math.max(...present.map(({ i }) => i)) + 1;
  const owner: number[] = [];
  const gammaValues: number[] = [];
  for (const { name, i } of present) {
    for (let k = 0; k < layer.r.get(name)!; k++) {
      owner.push(i);
      gammaValues.push(layer.scaling.get(name)! * g);
    }
  }
  const build = (): Omit<StackedFactors, 'sources' | 'gammaValues' | 'owner'> => {
    const scales = new Float32Array(experts * owner.length);
    owner.forEach((i, j) => (scales[i * owner.length + j] = gammaValues[j]!));
    return {
      a: tf.concat(present.map(({ name }) => layer.lora_A.get(name)!.weight), 0), // [Σr, in]
      b: tf.concat(present.map(({ name }) => layer.lora_B.get(name)!.weight), 1), // [out, Σr]
      columnScales: tf.tensor2d(scales, [experts, owner.length]),
    };
  };
  if (weights.some((w) => w.trainable)) return { sources: [], gammaValues, owner, ...build() };
  const sources = weights.map(dataIdOf);
  const cached = stackedCache.get(layer);
  const same = <T>(x: readonly T[], y: readonly T[]) => x.length === y.length && x.every((v, k) => v === y[k]);
  if (cached && same(cached.sources, sources) && same(cached.gammaValues, gammaValues)) return cached;
  if (cached) tf.dispose([cached.a, cached.b, cached.columnScales]);
  const entry: StackedFactors = { sources, gammaValues, owner, ...tf.tidy(build) };
  for (const t of [entry.a, entry.b, entry.columnScales]) tf.keep(t);
  stackedCache.set(layer, entry);
  return entry;
}

/** Frees a layer's cached stacked factors (the X-LoRA model is being disposed). */
export function releaseStackedExperts(layer: LoraLayer): void {
  const cached = stackedCache.get(layer);
  if (!cached) return;
  tf.dispose([cached.a, cached.b, cached.columnScales]);
  stackedCache.delete(layer);
}

/**
 * All experts of a layer in two matmuls: x [N, in] @ [A_1; ...; A_C]ᵀ gives [N, Σr]; each expert's columns are
 * scaled by s_i · γ_i · g; then @ [B_1 ... B_C]ᵀ gives [N, out]. Equal to the per-expert sum (no dropout).
 */
function stackedExperts(layer: LoraLayer, x: tf.Tensor, present: { name: string; i: number }[], scalings: tf.Tensor3D, g: number): tf.Tensor {
  const inF = x.shape.at(-1)!;
  const x2 = tf.reshape(x, [-1, inF]);
  const { a, b, columnScales } = stackedFactors(layer, present, g);
  const experts = columnScales.shape[0]!;
  // Column j of x @ aᵀ belongs to one expert: its scaling times its γ·g (one exact product per entry).
  const s2 = tf.slice(tf.reshape(scalings, [-1, scalings.shape[2]]), [0, 0], [-1, experts]); // [N, C]
  const columnScale = tf.matMul(s2, columnScales);
  const hidden = tf.mul(tf.matMul(x2, a, false, true), columnScale);
  const out = tf.matMul(hidden, b, false, true);
  return tf.reshape(out, [...x.shape.slice(0, -1), b.shape[0]!]);
}

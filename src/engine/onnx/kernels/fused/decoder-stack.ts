// The pre-norm decoder layers (Llama, Mistral, Qwen2) of a model as one ONNX graph, for inference; each layer:
//   n1 = rmsnorm(h) ; q, k, v = proj(n1) ; rotary on q, k ; attention over the cached past and the new k, v
//   h1 = h + proj_o(attention(q, k, v, bias)) ; y = h1 + proj_down(silu(proj_gate(n2)) * proj_up(n2)), n2 = rmsnorm(h1)
// Every projection is x Wᵀ (+ b) (+ ((x Aᵀ) ⊙ s) Bᵀ, the low-rank term adapters fold into). One call instead of
// ~40 kernels per layer: token-by-token decoding is bound by those dispatches, not by arithmetic. It returns only the new
// keys/values; the cache appends them in place (generation/cache.ts), so no step copies the whole past.
import type { KernelConfig, TensorInfo } from '@tensorflow/tfjs';
import type { OnnxNode, OnnxValueInfo } from '../../proto.js';
import { OnnxDataType } from '../../proto.js';
import type { OrtValue } from '../../runtime.js';
import { defineKernel } from '../define.js';
import { floatValue, int64Feed, msDomains } from '../graph-util.js';
import { attention, constant, fusedMatMul, mergeHeads, repeatKv, rotary, rotaryTables, splitHeads } from './graph-parts.js';

export const decoderProjections = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'] as const;
export type DecoderProjection = (typeof decoderProjections)[number];

function projection(x: string, p: DecoderProjection, out: string, parts: { bias: boolean; lowRank: boolean }): OnnxNode[] {
  const mm = (a: string, b: string, y: string) => fusedMatMul(a, b, y, { transB: 1 });
  const nodes: OnnxNode[] = [mm(x, `${p}_w`, `${p}_xw`)];
  let current = `${p}_xw`;
  if (parts.bias) {
    nodes.push({ opType: 'Add', inputs: [current, `${p}_b`], outputs: [`${p}_biased`] });
    current = `${p}_biased`;
  }
  if (parts.lowRank) {
    nodes.push(
      mm(x, `${p}_a`, `${p}_xa`),
      { opType: 'Mul', inputs: [`${p}_xa`, `${p}_s`], outputs: [`${p}_xas`] },
      mm(`${p}_xas`, `${p}_bb`, `${p}_low`),
      { opType: 'Add', inputs: [current, `${p}_low`], outputs: [`${p}_sum`] },
    );
    current = `${p}_sum`;
  }
  nodes.push({ opType: 'Identity', inputs: [current], outputs: [out] });
  return nodes;
}

interface LayerSignature {
  heads: number;
  kvHeads: number;
  headDim: number;
  scale: number;
  eps1: number;
  eps2: number;
  past: boolean;
  withCache: boolean;
  ropeRank: number;
  parts: Record<DecoderProjection, { bias: boolean; lowRank: boolean; scaleRank: number }>;
}

function buildGraph(sig: LayerSignature): { nodes: OnnxNode[]; inputs: OnnxValueInfo[]; outputs: OnnxValueInfo[] } {
  const { heads, kvHeads, headDim } = sig;
  const norm = (x: string, w: string, eps: number, out: string): OnnxNode => ({
    opType: 'SimplifiedLayerNormalization',
    inputs: [x, w],
    outputs: [out],
    attributes: { axis: -1, epsilon: { float: eps } },
  });
  const nodes: OnnxNode[] = [
    norm('h', 'ln1', sig.eps1, 'n1'),
    ...projection('n1', 'q', 'q3', sig.parts.q),
    ...projection('n1', 'k', 'k3', sig.parts.k),
    ...projection('n1', 'v', 'v3', sig.parts.v),
    ...rotaryTables('cos', 'sin'),
    ...splitHeads('q3', heads, headDim, 'q4'),
    ...splitHeads('k3', kvHeads, headDim, 'k4'),
    ...splitHeads('v3', kvHeads, headDim, 'v_new'),
    ...rotary('q4', 'q_rot'),
    ...rotary('k4', 'k_new'),
  ];
  const groups = heads / kvHeads;
  const scores = (q: string, k: string, out: string) => fusedMatMul(q, k, out, { transB: 1, alpha: sig.scale });
  nodes.push(...repeatKv('k_new', groups, heads, headDim, 'k_new_r'), ...repeatKv('v_new', groups, heads, headDim, 'v_new_r'));
  if (sig.past) {
    // The cache's arrays have spare capacity: attend over its first past_len positions, then the new ones,
    // without concatenating keys/values (one softmax over both score blocks).
    nodes.push(
      constant('zero', [0]),
      constant('seq_axis', [2]),
      constant('key_axis', [3]),
      constant('end', [2 ** 53]),
      { opType: 'Slice', inputs: ['past_key', 'zero', 'past_len', 'seq_axis'], outputs: ['k_past'] },
      { opType: 'Slice', inputs: ['past_value', 'zero', 'past_len', 'seq_axis'], outputs: ['v_past'] },
      ...repeatKv('k_past', groups, heads, headDim, 'k_past_r'),
      ...repeatKv('v_past', groups, heads, headDim, 'v_past_r'),
      scores('q_rot', 'k_past_r', 'scores_past'),
      scores('q_rot', 'k_new_r', 'scores_new'),
      { opType: 'Concat', inputs: ['scores_past', 'scores_new'], outputs: ['scores'], attributes: { axis: -1 } },
      { opType: 'Add', inputs: ['scores', 'bias'], outputs: ['masked'] },
      { opType: 'Softmax', inputs: ['masked'], outputs: ['probs'], attributes: { axis: -1 } },
      { opType: 'Slice', inputs: ['probs', 'zero', 'past_len', 'key_axis'], outputs: ['probs_past'] },
      { opType: 'Slice', inputs: ['probs', 'past_len', 'end', 'key_axis'], outputs: ['probs_new'] },
      { opType: 'MatMul', inputs: ['probs_past', 'v_past_r'], outputs: ['attended_past'] },
      { opType: 'MatMul', inputs: ['probs_new', 'v_new_r'], outputs: ['attended_new'] },
      { opType: 'Add', inputs: ['attended_past', 'attended_new'], outputs: ['attended'] },
    );
  } else {
    nodes.push(...attention('q_rot', 'k_new_r', 'v_new_r', 'bias', sig.scale, 'attended', 'probs'));
  }
  nodes.push(
    ...mergeHeads('attended', heads * headDim, 'merged'),
    ...projection('merged', 'o', 'attn_out', sig.parts.o),
    { opType: 'Add', inputs: ['h', 'attn_out'], outputs: ['h1'] },
    norm('h1', 'ln2', sig.eps2, 'n2'),
    ...projection('n2', 'gate', 'gate_out', sig.parts.gate),
    ...projection('n2', 'up', 'up_out', sig.parts.up),
    { opType: 'Sigmoid', inputs: ['gate_out'], outputs: ['gate_sig'] },
    { opType: 'Mul', inputs: ['gate_out', 'gate_sig'], outputs: ['gate_act'] },
    { opType: 'Mul', inputs: ['gate_act', 'up_out'], outputs: ['gated'] },
    ...projection('gated', 'down', 'mlp_out', sig.parts.down),
    { opType: 'Add', inputs: ['h1', 'mlp_out'], outputs: ['y'] },
  );
  return { nodes, inputs: graphInputs(sig), outputs: [floatValue('y', 3), ...(sig.withCache ? [floatValue('k_new', 4), floatValue('v_new', 4)] : [])] };
}

/** One layer's graph inputs (before {@link buildStack} prefixes them). */
function graphInputs(sig: LayerSignature): OnnxValueInfo[] {
  const inputs = [floatValue('h', 3), floatValue('ln1', 1), floatValue('ln2', 1), floatValue('cos', sig.ropeRank), floatValue('sin', sig.ropeRank), floatValue('bias', 4)];
  if (sig.past) inputs.push(floatValue('past_key', 4), floatValue('past_value', 4), { name: 'past_len', elemType: OnnxDataType.int64, shape: [1] });
  for (const p of decoderProjections) {
    const parts = sig.parts[p];
    inputs.push(floatValue(`${p}_w`, 2));
    if (parts.bias) inputs.push(floatValue(`${p}_b`, 1));
    if (parts.lowRank) inputs.push(floatValue(`${p}_a`, 2), floatValue(`${p}_bb`, 2), floatValue(`${p}_s`, parts.scaleRank));
  }
  return inputs;
}

interface StackSignature {
  layers: LayerSignature[];
  withHiddenStates: boolean;
}

const shared = new Set(['cos', 'sin']);

/**
 * The layers chained in one graph: each layer's nodes and inputs prefixed `L<i>_`, its `h` the previous layer's
 * `y`; cos/sin shared. Outputs: the last `y`, then (optionally) the hidden states between layers, then each
 * layer's new keys and values.
 */
function buildStack(stack: StackSignature): { nodes: OnnxNode[]; inputs: OnnxValueInfo[]; outputs: OnnxValueInfo[] } {
  const { layers } = stack;
  const nodes: OnnxNode[] = [];
  const inputs: OnnxValueInfo[] = [floatValue('h', 3), floatValue('cos', layers[0]!.ropeRank), floatValue('sin', layers[0]!.ropeRank)];
  layers.forEach((sig, i) => {
    const rename = (name: string) => (shared.has(name) ? name : name === 'h' ? (i === 0 ? 'h' : `L${i - 1}_y`) : `L${i}_${name}`);
    const one = buildGraph(sig);
    for (const node of one.nodes) nodes.push({ ...node, inputs: node.inputs.map(rename), outputs: node.outputs.map(rename) });
    for (const v of one.inputs) {
      if (v.name === 'h' || shared.has(v.name)) continue;
      inputs.push(v.elemType === OnnxDataType.float ? floatValue(rename(v.name), v.shape!.length) : { ...v, name: rename(v.name) });
    }
  });
  const last = layers.length - 1;
  const outputs = [floatValue(`L${last}_y`, 3)];
  if (stack.withHiddenStates) for (let i = 0; i < last; i++) outputs.push(floatValue(`L${i}_y`, 3));
  layers.forEach((sig, i) => {
    if (sig.withCache) outputs.push(floatValue(`L${i}_k_new`, 4), floatValue(`L${i}_v_new`, 4));
  });
  return { nodes, inputs, outputs };
}

/** Input names per graph key: listing them per call was a visible share of a decoding step. */
const inputNames = new Map<string, readonly string[]>();

function orderedInputs(named: Record<string, TensorInfo | undefined>, key: string, stack: StackSignature, pastLengths: readonly number[]): (TensorInfo | OrtValue)[] {
  let names = inputNames.get(key);
  if (names === undefined) {
    names = buildStack(stack).inputs.map((v) => v.name);
    inputNames.set(key, names);
  }
  return names.map((name) => {
    const pastLen = /^L(\d+)_past_len$/.exec(name);
    if (pastLen) return int64Feed([pastLengths[Number(pastLen[1])]!]);
    const t = named[name];
    if (t === undefined) throw new Error(`PeftTsDecoderStack: missing input ${name}`);
    return t;
  });
}

const forward = defineKernel('PeftTsDecoderStack', (backend, _inputs, attrs, named) => {
  const h = named['h']!;
  const count = attrs['layers'] as number;
  const withCache = attrs['withCache'] === true;
  const layers = Array.from({ length: count }, (_, i): LayerSignature => {
    const prefixed = (n: string) => named[`L${i}_${n}`];
    const parts = Object.fromEntries(
      decoderProjections.map((p) => [p, { bias: prefixed(`${p}_b`) !== undefined, lowRank: prefixed(`${p}_a`) !== undefined, scaleRank: prefixed(`${p}_s`)?.shape.length ?? 0 }]),
    ) as LayerSignature['parts'];
    return {
      heads: attrs['heads'] as number,
      kvHeads: attrs['kvHeads'] as number,
      headDim: attrs['headDim'] as number,
      scale: attrs['scale'] as number,
      eps1: attrs['eps1'] as number,
      eps2: attrs['eps2'] as number,
      past: prefixed('past_key') !== undefined,
      withCache,
      ropeRank: named['cos']!.shape.length,
      parts,
    };
  });
  const stack: StackSignature = { layers, withHiddenStates: attrs['withHiddenStates'] === true };
  const [batch, seq] = h.shape as [number, number, number];
  const kvShape = [batch, layers[0]!.kvHeads, seq, layers[0]!.headDim];
  const layerKeys = layers.map((l) => `${+l.past}${decoderProjections.map((p) => `${+l.parts[p].bias}${+l.parts[p].lowRank}${l.parts[p].scaleRank}`).join('')}`);
  const first = layers[0]!;
  const key = ['PeftTsDecoderStack', first.heads, first.kvHeads, first.headDim, first.scale, first.eps1, first.eps2, +withCache, +stack.withHiddenStates, first.ropeRank, layerKeys.join('.')].join(':');
  const outputs = [{ shape: h.shape }];
  if (stack.withHiddenStates) for (let i = 1; i < count; i++) outputs.push({ shape: h.shape });
  if (withCache) for (let i = 0; i < count; i++) outputs.push({ shape: kvShape }, { shape: kvShape });
  return backend.runGraph(
    key,
    () => ({ graph: { name: 'decoder_stack', ...buildStack(stack) }, options: msDomains }),
    orderedInputs(named, key, stack, attrs['pastLengths'] as number[]),
    outputs,
  );
});

export const decoderStackKernels: readonly KernelConfig[] = [forward];

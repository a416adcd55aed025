// Node builders shared by the fused graphs (attention, rotary, self-attention, decoder, MLP): attention and its
// gradient, heads split and merged, rotary embedding and its gradient, grouped-query key/value repetition and its
// gradient, the SwiGLU gradient.
import type { OnnxNode } from '../../proto.js';
import { int64Tensor } from '../../proto.js';

export function constant(name: string, values: readonly number[]): OnnxNode {
  return { opType: 'Constant', inputs: [], outputs: [name], attributes: { value: int64Tensor(values) } };
}

/** com.microsoft FusedMatMul: alpha · op(a) op(b), the transposes folded into the GEMM. */
export function fusedMatMul(a: string, b: string, out: string, { transA = 0, transB = 0, alpha = 1 } = {}): OnnxNode {
  return { opType: 'FusedMatMul', domain: 'com.microsoft', inputs: [a, b], outputs: [out], attributes: { transA, transB, alpha: { float: alpha } } };
}

/** [B, S, n*d] -> [B, n, S, d]. */
export function splitHeads(x: string, heads: number, headDim: number, out: string): OnnxNode[] {
  return [
    constant(`${out}_shape`, [0, 0, heads, headDim]),
    { opType: 'Reshape', inputs: [x, `${out}_shape`], outputs: [`${out}_bshd`] },
    { opType: 'Transpose', inputs: [`${out}_bshd`], outputs: [out], attributes: { perm: [0, 2, 1, 3] } },
  ];
}

/** [B, n, S, d] -> [B, S, n*d]. */
export function mergeHeads(x: string, width: number, out: string): OnnxNode[] {
  return [
    { opType: 'Transpose', inputs: [x], outputs: [`${out}_bshd`], attributes: { perm: [0, 2, 1, 3] } },
    constant(`${out}_shape`, [0, 0, width]),
    { opType: 'Reshape', inputs: [`${out}_bshd`, `${out}_shape`], outputs: [out] },
  ];
}

/** cos/sin `[B|1, S, d]` as `cos4`/`sin4` `[B|1, 1, S, d]`, broadcasting over heads. */
export function rotaryTables(cos: string, sin: string): OnnxNode[] {
  return [
    constant('rope_axis', [1]),
    { opType: 'Unsqueeze', inputs: [cos, 'rope_axis'], outputs: ['cos4'] },
    { opType: 'Unsqueeze', inputs: [sin, 'rope_axis'], outputs: ['sin4'] },
  ];
}

/**
 * x * cos + rotate_half(x) * sin, rotate_half: [x1, x2] -> [-x2, x1]; cos/sin broadcastable to x (by default the
 * tables of {@link rotaryTables}).
 */
export function rotary(x: string, out: string, cos = 'cos4', sin = 'sin4'): OnnxNode[] {
  return [
    { opType: 'Split', inputs: [x], outputs: [`${out}_x1`, `${out}_x2`], attributes: { axis: -1 } },
    { opType: 'Neg', inputs: [`${out}_x2`], outputs: [`${out}_nx2`] },
    { opType: 'Concat', inputs: [`${out}_nx2`, `${out}_x1`], outputs: [`${out}_rx`], attributes: { axis: -1 } },
    { opType: 'Mul', inputs: [x, cos], outputs: [`${out}_xc`] },
    { opType: 'Mul', inputs: [`${out}_rx`, sin], outputs: [`${out}_rs`] },
    { opType: 'Add', inputs: [`${out}_xc`, `${out}_rs`], outputs: [out] },
  ];
}

/** The gradient of {@link rotary}: dx = dy * cos - R(dy * sin), with -R([t1, t2]) = [t2, -t1]. */
export function rotaryGrad(dy: string, out: string, cos = 'cos4', sin = 'sin4'): OnnxNode[] {
  return [
    { opType: 'Mul', inputs: [dy, sin], outputs: [`${out}_t`] },
    { opType: 'Split', inputs: [`${out}_t`], outputs: [`${out}_t1`, `${out}_t2`], attributes: { axis: -1 } },
    { opType: 'Neg', inputs: [`${out}_t1`], outputs: [`${out}_nt1`] },
    { opType: 'Concat', inputs: [`${out}_t2`, `${out}_nt1`], outputs: [`${out}_rt`], attributes: { axis: -1 } },
    { opType: 'Mul', inputs: [dy, cos], outputs: [`${out}_dc`] },
    { opType: 'Add', inputs: [`${out}_dc`, `${out}_rt`], outputs: [out] },
  ];
}

/** softmax(q kᵀ * scale + bias) v as `out`, the probabilities as `probs`. */
export function attention(q: string, k: string, v: string, bias: string, scale: number, out: string, probs: string): OnnxNode[] {
  return [
    fusedMatMul(q, k, `${out}_scores`, { transB: 1, alpha: scale }),
    { opType: 'Add', inputs: [`${out}_scores`, bias], outputs: [`${out}_masked`] },
    { opType: 'Softmax', inputs: [`${out}_masked`], outputs: [probs], attributes: { axis: -1 } },
    { opType: 'MatMul', inputs: [probs, v], outputs: [out] },
  ];
}

/**
 * The gradient of {@link attention} for incoming `dO`, with P the probabilities and O the output:
 * dV = Pᵀ dO, dP = dO vᵀ, dS = P * (dP - rowsum(dO * O)), dQ = scale * dS k, dK = scale * dSᵀ q
 * (rowsum(dP * P) = rowsum(dO * O), FlashAttention's identity: a reduction over headDim, not over keys).
 */
export function attentionGrad(
  t: { dO: string; o: string; p: string; q: string; k: string; v: string },
  scale: number,
  out: { dq: string; dk: string; dv: string },
): OnnxNode[] {
  const n = (name: string) => `${out.dq}_${name}`;
  return [
    fusedMatMul(t.p, t.dO, out.dv, { transA: 1 }),
    fusedMatMul(t.dO, t.v, n('dp'), { transB: 1 }),
    { opType: 'Mul', inputs: [t.dO, t.o], outputs: [n('do_o')] },
    constant(n('last'), [-1]),
    { opType: 'ReduceSum', inputs: [n('do_o'), n('last')], outputs: [n('rowsum')], attributes: { keepdims: 1 } },
    { opType: 'Sub', inputs: [n('dp'), n('rowsum')], outputs: [n('centred')] },
    { opType: 'Mul', inputs: [t.p, n('centred')], outputs: [n('ds')] },
    fusedMatMul(n('ds'), t.k, out.dq, { alpha: scale }),
    fusedMatMul(n('ds'), t.q, out.dk, { transA: 1, alpha: scale }),
  ];
}

/** transformers' repeat_kv: [B, kvH, T, d] -> [B, kvH * g, T, d], each head repeated g times in a row. */
export function repeatKv(x: string, groups: number, heads: number, headDim: number, out: string): OnnxNode[] {
  if (groups === 1) return [{ opType: 'Identity', inputs: [x], outputs: [out] }];
  return [
    constant(`${out}_axis`, [2]),
    { opType: 'Unsqueeze', inputs: [x, `${out}_axis`], outputs: [`${out}_5d`] },
    constant(`${out}_rep`, [1, 1, groups, 1, 1]),
    { opType: 'Expand', inputs: [`${out}_5d`, `${out}_rep`], outputs: [`${out}_wide`] },
    constant(`${out}_shape`, [0, heads, -1, headDim]),
    { opType: 'Reshape', inputs: [`${out}_wide`, `${out}_shape`], outputs: [out] },
  ];
}

/** The gradient of {@link repeatKv}: each key/value head receives the sum over its g query heads. */
export function repeatKvGrad(dy: string, groups: number, kvHeads: number, headDim: number, out: string): OnnxNode[] {
  if (groups === 1) return [{ opType: 'Identity', inputs: [dy], outputs: [out] }];
  return [
    constant(`${out}_shape`, [0, kvHeads, groups, -1, headDim]),
    { opType: 'Reshape', inputs: [dy, `${out}_shape`], outputs: [`${out}_5d`] },
    constant(`${out}_axis`, [2]),
    { opType: 'ReduceSum', inputs: [`${out}_5d`, `${out}_axis`], outputs: [out], attributes: { keepdims: 0 } },
  ];
}

/**
 * The gradient of silu(g) * u for incoming `dy`, as `dg` and `du`: with s = sigmoid(g),
 * du = dy * g * s and dg = dy * u * s * (1 + g * (1 - s)).
 */
export function swiGluGrad(dy: string, g: string, u: string, dg: string, du: string): OnnxNode[] {
  return [
    { opType: 'Sigmoid', inputs: [g], outputs: ['s'] },
    { opType: 'Mul', inputs: [g, 's'], outputs: ['act'] },
    { opType: 'Mul', inputs: [dy, 'act'], outputs: [du] },
    // 1 + g * (1 - s) = 1 + g - act
    { opType: 'Sub', inputs: [g, 'act'], outputs: ['g_minus_act'] },
    { opType: 'Constant', inputs: [], outputs: ['one'], attributes: { value_float: { float: 1 } } },
    { opType: 'Add', inputs: ['g_minus_act', 'one'], outputs: ['k'] },
    { opType: 'Mul', inputs: ['s', 'k'], outputs: ['dsilu'] },
    { opType: 'Mul', inputs: [dy, u], outputs: ['dy_u'] },
    { opType: 'Mul', inputs: ['dy_u', 'dsilu'], outputs: [dg] },
  ];
}

// Rotary self-attention from the projections' outputs to the o_proj input, one graph each way:
//   q, k, v [B, S, n*d] -> heads -> rotary on q, k -> repeat_kv -> softmax(q kᵀ * scale + bias) v -> [B, S, H*d]
// Backward recomputes the forward (FlashAttention's trade): saving the probabilities would write and keep
// B·H·S·T floats per layer, far more than the matmuls that rebuild them. Then attention's gradient and those of
// repeat_kv (sum over each group), rotary and the head split.
import type { KernelConfig, TensorInfo } from '@tensorflow/tfjs';
import type { OnnxNode } from '../../proto.js';
import { defineKernel } from '../define.js';
import { floatValue, msDomains } from '../graph-util.js';
import { attention, attentionGrad, mergeHeads, repeatKv, repeatKvGrad, rotary, rotaryGrad, rotaryTables, splitHeads } from './graph-parts.js';

interface Spec {
  heads: number;
  kvHeads: number;
  headDim: number;
  scale: number;
}

function specOf(attrs: Record<string, unknown>): Spec {
  return { heads: attrs['heads'] as number, kvHeads: attrs['kvHeads'] as number, headDim: attrs['headDim'] as number, scale: attrs['scale'] as number };
}

const keyOf = (name: string, s: Spec, ropeRank: number, biasRank: number) => [name, s.heads, s.kvHeads, s.headDim, s.scale, ropeRank, biasRank].join(':');

/** q, k, v, cos, sin, bias -> the attention probabilities `p` and output `o` [B, H, S, d], plus what backward reuses. */
function forwardNodes(s: Spec): OnnxNode[] {
  const groups = s.heads / s.kvHeads;
  return [
    ...rotaryTables('cos', 'sin'),
    ...splitHeads('q', s.heads, s.headDim, 'q4'),
    ...splitHeads('k', s.kvHeads, s.headDim, 'k4'),
    ...splitHeads('v', s.kvHeads, s.headDim, 'v4'),
    ...rotary('q4', 'q_rot'),
    ...rotary('k4', 'k_rot'),
    ...repeatKv('k_rot', groups, s.heads, s.headDim, 'k_r'),
    ...repeatKv('v4', groups, s.heads, s.headDim, 'v_r'),
    ...attention('q_rot', 'k_r', 'v_r', 'bias', s.scale, 'o', 'p'),
  ];
}

function inputs(ropeRank: number, biasRank: number) {
  return [floatValue('q', 3), floatValue('k', 3), floatValue('v', 3), floatValue('cos', ropeRank), floatValue('sin', ropeRank), floatValue('bias', biasRank)];
}

const forward = defineKernel('PeftTsSelfAttention', (backend, _inputs, attrs, named) => {
  const s = specOf(attrs);
  const { q, k, v, cos, sin, bias } = named as Record<string, TensorInfo>;
  return backend.runGraph(
    keyOf('PeftTsSelfAttention', s, cos!.shape.length, bias!.shape.length),
    () => ({
      graph: {
        name: 'self_attention',
        nodes: [...forwardNodes(s), ...mergeHeads('o', s.heads * s.headDim, 'y')],
        inputs: inputs(cos!.shape.length, bias!.shape.length),
        outputs: [floatValue('y', 3)],
      },
      options: msDomains,
    }),
    [q!, k!, v!, cos!, sin!, bias!],
    [{ shape: q!.shape }],
  )[0];
});

const backward = defineKernel('PeftTsSelfAttentionGrad', (backend, _inputs, attrs, named) => {
  const s = specOf(attrs);
  const { dy, q, k, v, cos, sin, bias } = named as Record<string, TensorInfo>;
  const groups = s.heads / s.kvHeads;
  return backend.runGraph(
    keyOf('PeftTsSelfAttentionGrad', s, cos!.shape.length, bias!.shape.length),
    () => ({
      graph: {
        name: 'self_attention_grad',
        nodes: [
          ...forwardNodes(s),
          ...splitHeads('dy', s.heads, s.headDim, 'do'),
          ...attentionGrad({ dO: 'do', o: 'o', p: 'p', q: 'q_rot', k: 'k_r', v: 'v_r' }, s.scale, { dq: 'dq_rot', dk: 'dk_r', dv: 'dv_r' }),
          ...repeatKvGrad('dk_r', groups, s.kvHeads, s.headDim, 'dk_rot'),
          ...repeatKvGrad('dv_r', groups, s.kvHeads, s.headDim, 'dv4'),
          ...rotaryGrad('dq_rot', 'dq4'),
          ...rotaryGrad('dk_rot', 'dk4'),
          ...mergeHeads('dq4', s.heads * s.headDim, 'dq'),
          ...mergeHeads('dk4', s.kvHeads * s.headDim, 'dk'),
          ...mergeHeads('dv4', s.kvHeads * s.headDim, 'dv'),
        ],
        inputs: [floatValue('dy', 3), ...inputs(cos!.shape.length, bias!.shape.length)],
        outputs: [floatValue('dq', 3), floatValue('dk', 3), floatValue('dv', 3)],
      },
      options: msDomains,
    }),
    [dy!, q!, k!, v!, cos!, sin!, bias!],
    [{ shape: q!.shape }, { shape: k!.shape }, { shape: v!.shape }],
  );
});

export const selfAttentionKernels: readonly KernelConfig[] = [forward, backward];

// Attention softmax(q kᵀ * scale + bias) v and its gradient (graph-parts.ts), one graph each way; forward writes
// out the probabilities P that backward reuses. Transposes and `scale` are folded into com.microsoft FusedMatMul. `scale` is baked into the graph (one graph
// per model scale and rank signature; models use one or a few).
import type { KernelConfig, TensorInfo } from '@tensorflow/tfjs';
import { defineKernel } from '../define.js';
import { floatValue, msDomains } from '../graph-util.js';
import { attention, attentionGrad } from './graph-parts.js';


const forward = defineKernel('PeftTsAttention', (backend, inputs, attrs) => {
  const [q, k, v, bias] = inputs as [TensorInfo, TensorInfo, TensorInfo, TensorInfo];
  const scale = attrs['scale'] as number;
  const withProbs = attrs['withProbs'] === true;
  const rank = q.shape.length;
  const lead = q.shape.slice(0, -1);
  const outputs = [{ shape: [...lead, v.shape[rank - 1]!] }, ...(withProbs ? [{ shape: [...lead, k.shape[rank - 2]!] }] : [])];
  return backend.runGraph(
    `PeftTsAttention:${rank}:${bias.shape.length}:${+withProbs}:${scale}`,
    () => ({
      graph: {
        name: 'attention',
        nodes: attention('q', 'k', 'v', 'bias', scale, 'y', 'p'),
        inputs: [floatValue('q', rank), floatValue('k', rank), floatValue('v', rank), floatValue('bias', bias.shape.length)],
        outputs: [floatValue('y', rank), ...(withProbs ? [floatValue('p', rank)] : [])],
      },
      options: msDomains,
    }),
    [q, k, v, bias],
    outputs,
  );
});

const backward = defineKernel('PeftTsAttentionGrad', (backend, inputs, attrs) => {
  const [dy, out, probs, q, k, v] = inputs as [TensorInfo, TensorInfo, TensorInfo, TensorInfo, TensorInfo, TensorInfo];
  const scale = attrs['scale'] as number;
  const rank = q.shape.length;
  return backend.runGraph(
    `PeftTsAttentionGrad:${rank}:${scale}`,
    () => ({
      graph: {
        name: 'attention_grad',
        nodes: attentionGrad({ dO: 'dy', o: 'o', p: 'p', q: 'q', k: 'k', v: 'v' }, scale, { dq: 'dq', dk: 'dk', dv: 'dv' }),
        inputs: [floatValue('dy', rank), floatValue('o', rank), floatValue('p', rank), floatValue('q', rank), floatValue('k', rank), floatValue('v', rank)],
        outputs: [floatValue('dq', rank), floatValue('dk', rank), floatValue('dv', rank)],
      },
      options: msDomains,
    }),
    [dy, out, probs, q, k, v],
    [{ shape: q.shape }, { shape: k.shape }, { shape: v.shape }],
  );
});

export const attentionKernels: readonly KernelConfig[] = [forward, backward];

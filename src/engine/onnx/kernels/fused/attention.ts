// Attention softmax(q kᵀ * scale + bias) v and its gradient, one graph each way. With S the scaled scores,
// P = softmax(S + bias), O = P v:
//   dV = Pᵀ dO,  dP = dO vᵀ,  dS = P * (dP - rowsum(dP * P)),  dQ = scale * dS k,  dK = scale * dSᵀ q
// rowsum(dP * P) = rowsum(dO * O) (FlashAttention's identity): a reduction over headDim, not over keys.
// Transposes and `scale` are folded into com.microsoft FusedMatMul. `scale` is baked into the graph (one graph
// per model scale and rank signature; models use one or a few).
import type { KernelConfig, TensorInfo } from '@tensorflow/tfjs';
import type { OnnxNode } from '../../proto.js';
import { int64Tensor } from '../../proto.js';
import { defineKernel } from '../define.js';
import { floatValue, msDomains } from '../graph-util.js';


function matMul(a: string, b: string, out: string, transA: number, transB: number, alpha: number): OnnxNode {
  return { opType: 'FusedMatMul', domain: 'com.microsoft', inputs: [a, b], outputs: [out], attributes: { transA, transB, alpha: { float: alpha } } };
}

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
        nodes: [
          matMul('q', 'k', 's', 0, 1, scale),
          { opType: 'Add', inputs: ['s', 'bias'], outputs: ['sb'] },
          { opType: 'Softmax', inputs: ['sb'], outputs: ['p'], attributes: { axis: -1 } },
          { opType: 'MatMul', inputs: ['p', 'v'], outputs: ['y'] },
        ],
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
        nodes: [
          matMul('p', 'dy', 'dv', 1, 0, 1),
          matMul('dy', 'v', 'dp', 0, 1, 1),
          { opType: 'Mul', inputs: ['dy', 'o'], outputs: ['dy_o'] },
          { opType: 'Constant', inputs: [], outputs: ['last'], attributes: { value: int64Tensor([-1]) } },
          { opType: 'ReduceSum', inputs: ['dy_o', 'last'], outputs: ['rowsum'], attributes: { keepdims: 1 } },
          { opType: 'Sub', inputs: ['dp', 'rowsum'], outputs: ['centred'] },
          { opType: 'Mul', inputs: ['p', 'centred'], outputs: ['ds'] },
          matMul('ds', 'k', 'dq', 0, 0, scale),
          matMul('ds', 'q', 'dk', 1, 0, scale),
        ],
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

// BatchMatMul and _FusedMatMul as ONNX Runtime's FusedMatMul (com.microsoft): a matmul with the transposes of
// the last two dimensions folded into the GEMM, numpy batch broadcasting, one graph per rank/flag signature.
import type { KernelConfig, TensorInfo } from '@tensorflow/tfjs';
import { tf } from '../../tf.js';
import type { OnnxNode } from '../proto.js';
import type { OnnxRuntimeBackend } from '../backend.js';
import { allFloat32, defineKernel, tooLittleWorkForOrt } from './define.js';
import { floatValue, msDomains } from './graph-util.js';


type Activation = 'linear' | 'relu' | 'relu6' | 'prelu' | 'leakyrelu' | 'sigmoid' | 'elu';

function matMulShape(a: TensorInfo, b: TensorInfo, ta: boolean, tb: boolean): number[] {
  const ra = a.shape.length;
  const rb = b.shape.length;
  const m = ta ? a.shape[ra - 1] : a.shape[ra - 2];
  const n = tb ? b.shape[rb - 2] : b.shape[rb - 1];
  const batch = tf.backend_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  return [...batch, m, n];
}

function activationNodes(activation: Activation, input: string, output: string, alpha: number | undefined): OnnxNode[] {
  switch (activation) {
    case 'linear':
      return [{ opType: 'Identity', inputs: [input], outputs: [output] }];
    case 'relu':
      return [{ opType: 'Relu', inputs: [input], outputs: [output] }];
    case 'relu6':
      return [{ opType: 'Clip', inputs: [input, 'zero', 'six'], outputs: [output] }];
    case 'sigmoid':
      return [{ opType: 'Sigmoid', inputs: [input], outputs: [output] }];
    case 'elu':
      return [{ opType: 'Elu', inputs: [input], outputs: [output] }];
    case 'leakyrelu':
      return [{ opType: 'LeakyRelu', inputs: [input], outputs: [output], attributes: { alpha: { float: alpha ?? 0.2 } } }];
    case 'prelu':
      return [{ opType: 'PRelu', inputs: [input, 'alpha'], outputs: [output] }];
  }
}

interface MatMulCall {
  a: TensorInfo;
  b: TensorInfo;
  transposeA: boolean;
  transposeB: boolean;
  bias?: TensorInfo;
  preluWeights?: TensorInfo;
  activation?: Activation;
  leakyreluAlpha?: number;
}

function runMatMul(backend: OnnxRuntimeBackend, call: MatMulCall): TensorInfo {
  const { a, b, transposeA, transposeB, bias, preluWeights, activation = 'linear', leakyreluAlpha } = call;
  const outShape = matMulShape(a, b, transposeA, transposeB);
  if (outShape.some((d) => d === 0) || a.shape.some((d) => d === 0)) {
    return backend.makeTensorInfo(outShape, 'float32', new Float32Array(outShape.reduce((x, y) => x * y, 1)));
  }
  const fused = bias !== undefined || activation !== 'linear';
  const key = [
    'matmul', a.shape.length, b.shape.length, +transposeA, +transposeB,
    bias?.shape.length ?? '-', activation, preluWeights?.shape.length ?? '-', leakyreluAlpha ?? '',
  ].join(':');
  const inputs = [a, b, ...(bias ? [bias] : []), ...(preluWeights ? [preluWeights] : [])];
  const [out] = backend.runGraph(
    key,
    () => {
      const nodes: OnnxNode[] = [
        {
          opType: 'FusedMatMul',
          domain: 'com.microsoft',
          inputs: ['a', 'b'],
          outputs: [fused ? 'mm' : 'y'],
          attributes: { transA: +transposeA, transB: +transposeB, alpha: { float: 1 } },
        },
      ];
      let current = 'mm';
      if (bias) {
        nodes.push({ opType: 'Add', inputs: ['mm', 'bias'], outputs: ['biased'] });
        current = 'biased';
      }
      if (fused) nodes.push(...activationNodes(activation, current, 'y', leakyreluAlpha));
      if (activation === 'relu6') {
        nodes.unshift(
          { opType: 'Constant', inputs: [], outputs: ['zero'], attributes: { value_float: { float: 0 } } },
          { opType: 'Constant', inputs: [], outputs: ['six'], attributes: { value_float: { float: 6 } } },
        );
      }
      return {
        graph: {
          name: key,
          nodes,
          inputs: [
            floatValue('a', a.shape.length),
            floatValue('b', b.shape.length),
            ...(bias ? [floatValue('bias', bias.shape.length)] : []),
            ...(preluWeights ? [floatValue('alpha', preluWeights.shape.length)] : []),
          ],
          outputs: [floatValue('y', outShape.length)],
        },
        options: msDomains,
      };
    },
    inputs,
    [{ shape: outShape }],
  );
  return out!;
}

/**
 * Small unbatched products stay on the cpu kernel (its batched broadcasting is unreliable, so only batch 1 does).
 */
function smallForCpu(a: TensorInfo, b: TensorInfo, transposeA: boolean, transposeB: boolean): boolean {
  const out = matMulShape(a, b, transposeA, transposeB);
  const inner = transposeA ? a.shape[a.shape.length - 2]! : a.shape[a.shape.length - 1]!;
  const batch = tf.util.sizeFromShape(out.slice(0, -2));
  return batch === 1 && tooLittleWorkForOrt(tf.util.sizeFromShape(out) * inner);
}

// Other dtypes, and the cases noted, return undefined: TF.js's cpu kernel runs instead.
const batchMatMul = defineKernel('BatchMatMul', (backend, inputs, attrs, named) => {
  if (!allFloat32(inputs)) return undefined;
  const { a, b } = named as { a: TensorInfo; b: TensorInfo };
  const { transposeA, transposeB } = attrs as unknown as { transposeA: boolean; transposeB: boolean };
  if (smallForCpu(a, b, transposeA, transposeB)) return undefined;
  return runMatMul(backend, { a, b, transposeA, transposeB });
});

const fusedMatMul = defineKernel('_FusedMatMul', (backend, inputs, attrs, named) => {
  if (!allFloat32(inputs)) return undefined;
  const { a, b, bias, preluActivationWeights } = named as { a: TensorInfo; b: TensorInfo; bias?: TensorInfo; preluActivationWeights?: TensorInfo };
  const { transposeA, transposeB, activation, leakyreluAlpha } = attrs as unknown as {
    transposeA: boolean;
    transposeB: boolean;
    activation: Activation;
    leakyreluAlpha?: number;
  };
  // An empty inner dimension: the product is zeros, but bias and activation still apply (as TF.js's cpu kernel does).
  const inner = transposeA ? a.shape[a.shape.length - 2] : a.shape[a.shape.length - 1];
  if (inner === 0 && (bias !== undefined || activation !== 'linear') && !matMulShape(a, b, transposeA, transposeB).includes(0)) return undefined;
  if (smallForCpu(a, b, transposeA, transposeB)) return undefined;
  return runMatMul(backend, { a, b, transposeA, transposeB, bias, preluWeights: preluActivationWeights, activation, leakyreluAlpha });
});

export const matMulKernels: readonly KernelConfig[] = [batchMatMul, fusedMatMul];

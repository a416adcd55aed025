// A SwiGLU MLP with frozen weights, down(silu(gate(x)) * up(x)), one graph each way: what LoRA or LoHa training
// on the attention projections runs in every layer. Forward also returns the gate and up activations for
// backward; backward gives dx only (no weight trains): da = dy Wd, SwiGLU's gradient, dx = dg Wg + du Wu.
import type { KernelConfig, TensorInfo } from '@tensorflow/tfjs';
import type { OnnxNode } from '../../proto.js';
import { defineKernel } from '../define.js';
import { floatValue, msDomains } from '../graph-util.js';
import { fusedMatMul, swiGluGrad } from './graph-parts.js';

function linear(x: string, p: string, out: string, bias: boolean): OnnxNode[] {
  if (!bias) return [fusedMatMul(x, `${p}_w`, out, { transB: 1 })];
  return [fusedMatMul(x, `${p}_w`, `${out}_xw`, { transB: 1 }), { opType: 'Add', inputs: [`${out}_xw`, `${p}_b`], outputs: [out] }];
}

function weightInputs(bias: boolean) {
  return ['gate', 'up', 'down'].flatMap((p) => [floatValue(`${p}_w`, 2), ...(bias ? [floatValue(`${p}_b`, 1)] : [])]);
}

function weights(named: Record<string, TensorInfo | undefined>, bias: boolean): TensorInfo[] {
  return ['gate', 'up', 'down'].flatMap((p) => [named[`${p}_w`]!, ...(bias ? [named[`${p}_b`]!] : [])]);
}

const forward = defineKernel('PeftTsFrozenMlp', (backend, _inputs, attrs, named) => {
  const x = named['x']!;
  const bias = named['gate_b'] !== undefined;
  const withActivations = attrs['withActivations'] === true;
  const inner = named['gate_w']!.shape[0]!;
  const rows = x.shape[0]!;
  return backend.runGraph(
    `PeftTsFrozenMlp:${+bias}:${+withActivations}`,
    () => ({
      graph: {
        name: 'frozen_mlp',
        nodes: [
          ...linear('x', 'gate', 'g', bias),
          ...linear('x', 'up', 'u', bias),
          { opType: 'Sigmoid', inputs: ['g'], outputs: ['s'] },
          { opType: 'Mul', inputs: ['g', 's'], outputs: ['act'] },
          { opType: 'Mul', inputs: ['act', 'u'], outputs: ['a'] },
          ...linear('a', 'down', 'y', bias),
        ],
        inputs: [floatValue('x', 2), ...weightInputs(bias)],
        outputs: [floatValue('y', 2), ...(withActivations ? [floatValue('g', 2), floatValue('u', 2)] : [])],
      },
      options: msDomains,
    }),
    [x, ...weights(named, bias)],
    [{ shape: x.shape }, ...(withActivations ? [{ shape: [rows, inner] }, { shape: [rows, inner] }] : [])],
  );
});

const backward = defineKernel('PeftTsFrozenMlpGrad', (backend, _inputs, _attrs, named) => {
  const { dy, g, u } = named as Record<string, TensorInfo>;
  return backend.runGraph(
    'PeftTsFrozenMlpGrad',
    () => ({
      graph: {
        name: 'frozen_mlp_grad',
        nodes: [
          { opType: 'MatMul', inputs: ['dy', 'down_w'], outputs: ['da'] },
          ...swiGluGrad('da', 'g', 'u', 'dg', 'du'),
          { opType: 'MatMul', inputs: ['dg', 'gate_w'], outputs: ['dx_gate'] },
          { opType: 'MatMul', inputs: ['du', 'up_w'], outputs: ['dx_up'] },
          { opType: 'Add', inputs: ['dx_gate', 'dx_up'], outputs: ['dx'] },
        ],
        inputs: [floatValue('dy', 2), floatValue('g', 2), floatValue('u', 2), floatValue('gate_w', 2), floatValue('up_w', 2), floatValue('down_w', 2)],
        outputs: [floatValue('dx', 2)],
      },
      options: msDomains,
    }),
    [dy!, g!, u!, named['gate_w']!, named['up_w']!, named['down_w']!],
    [{ shape: [dy!.shape[0]!, named['gate_w']!.shape[1]!] }],
  );
});

export const frozenMlpKernels: readonly KernelConfig[] = [forward, backward];

// Reference data for the nn tests: inputs, weights and PyTorch 2.15 outputs/gradients, generated once by
// fixtures/gen_nn_reference.py (the tests never run Python).
import { readFileSync } from 'node:fs';
import { tf } from '../../src/engine/tf.js';

export interface RefTensor {
  shape: number[];
  data: number[];
}

export interface ConvCase {
  name: string;
  in: number;
  out: number;
  kernel: number | number[];
  options: {
    stride?: number | number[];
    padding?: number | number[] | 'same' | 'valid';
    dilation?: number | number[];
    groups?: number;
    bias?: boolean;
    padding_mode?: 'zeros' | 'reflect' | 'replicate' | 'circular';
  };
  x: RefTensor;
  weight: RefTensor;
  bias: RefTensor | null;
  y: RefTensor;
  repr: string;
}

export interface ConvGradCase extends Omit<ConvCase, 'y' | 'repr' | 'bias'> {
  bias: RefTensor;
  G: RefTensor;
  dx: RefTensor;
  dweight: RefTensor;
  dbias: RefTensor;
}

interface Affine {
  x: RefTensor;
  weight: RefTensor;
  bias: RefTensor;
  y: RefTensor;
}

export interface Reference {
  linear: Affine;
  gpt2_conv1d: Affine;
  layernorm: Affine;
  layernorm2d: Affine;
  rmsnorm: { x: RefTensor; weight: RefTensor; eps: number; y: RefTensor };
  conv1d: ConvCase[];
  conv2d: ConvCase[];
  activations: Record<string, RefTensor> & { x: RefTensor };
  gelu_grad: RefTensor;
  linear_grad: { x: RefTensor; weight: RefTensor; bias: RefTensor; G: RefTensor; dx: RefTensor; dweight: RefTensor; dbias: RefTensor };
  conv2d_grad: ConvGradCase[];
  embedding_grad: { ids: RefTensor; weight: RefTensor; paddingIdx: number; G: RefTensor; y: RefTensor; dweight: RefTensor };
  module: { named_modules: string[]; named_parameters: string[]; state_dict: string[]; repr: string };
}

export const ref = JSON.parse(readFileSync(new URL('./fixtures/nn-reference.json', import.meta.url), 'utf8')) as Reference;

export function toTensor(t: RefTensor, dtype: 'float32' | 'int32' = 'float32'): tf.Tensor {
  return tf.tensor(t.data, t.shape, dtype);
}

/** Maps a fixture's PyTorch conv kwargs to this package's option names. */
export function convOptions(c: Pick<ConvCase, 'options'>): {
  stride?: number | [number, number];
  padding?: number | [number, number] | 'same' | 'valid';
  dilation?: number | [number, number];
  groups?: number;
  bias?: boolean;
  paddingMode?: 'zeros' | 'reflect' | 'replicate' | 'circular';
} {
  const pair = (v: number | number[] | undefined) => (Array.isArray(v) ? (v as [number, number]) : v);
  const { stride, padding, dilation, groups, bias, padding_mode } = c.options;
  return {
    stride: pair(stride),
    padding: typeof padding === 'string' ? padding : pair(padding),
    dilation: pair(dilation),
    groups,
    bias,
    paddingMode: padding_mode,
  };
}

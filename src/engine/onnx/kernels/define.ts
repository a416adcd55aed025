// Declaring an onnxruntime kernel: a function that either runs an ONNX graph or returns `undefined`, in which
// case TF.js's cpu kernel of the same name runs (dtypes or attributes our graph does not cover).
import type { KernelConfig, KernelFunc, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs';
import { tf } from '../../tf.js';
import type { OnnxRuntimeBackend } from '../backend.js';
import { asOnnxRuntimeBackend, onnxRuntimeBackendName } from '../backend.js';

/** `inputs` in order, without absent optional ones; `named` as TF.js passes them. */
export type OrtKernelFunc = (
  backend: OnnxRuntimeBackend,
  inputs: TensorInfo[],
  attrs: NamedAttrMap,
  named: NamedTensorInfoMap,
) => TensorInfo | TensorInfo[] | undefined;

export function defineKernel(kernelName: string, run: OrtKernelFunc): KernelConfig {
  const kernelFunc: KernelFunc = (args) => {
    const inputs = Object.values(args.inputs).filter((t): t is TensorInfo => t !== undefined);
    const out = run(asOnnxRuntimeBackend(args.backend), inputs, args.attrs ?? {}, args.inputs);
    return out ?? tf.getKernel(kernelName, 'cpu').kernelFunc(args);
  };
  return { kernelName, backendName: onnxRuntimeBackendName, kernelFunc };
}

export function allFloat32(inputs: readonly TensorInfo[]): boolean {
  return inputs.every((t) => t.dtype === 'float32');
}


/**
 * Below this many output elements, element-wise and data-movement kernels stay on TF.js's JavaScript loops: an
 * ONNX Runtime call costs ~10-20 us before any work, which dominates one-token decoding. Matmuls stay there below
 * 16 times as many multiply-adds (X-LoRA's per-token column scales, rank-r LoRA products of one token); fused
 * kernels always run in ONNX Runtime. `PEFT_TS_ORT_MIN_ELEMENTS` overrides (0: everything through ONNX Runtime).
 */
let minElements = Number(process.env['PEFT_TS_ORT_MIN_ELEMENTS'] ?? 1024);

/** Sets the element count below which simple kernels use the cpu kernels; returns the previous value. */
export function setOrtMinElements(n: number): number {
  const previous = minElements;
  minElements = n;
  return previous;
}

export function tooSmallForOrt(shape: number[]): boolean {
  return tf.util.sizeFromShape(shape) < minElements;
}

/** Whether a matmul of this many multiply-adds costs less in JavaScript than an ONNX Runtime call. */
export function tooLittleWorkForOrt(multiplyAdds: number): boolean {
  return multiplyAdds < 16 * minElements;
}

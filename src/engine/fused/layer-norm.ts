import { tf } from '../tf.js';
import { fusedKernelsActive, recordingGradients, runFusedKernel } from './fused-op.js';

// Kernels see x as [rows, size of the normalised dims]: reshapes are free on the cpu-based backend, and one
// graph serves every rank. Backward reuses the per-row mean and rsqrt from forward instead of keeping the
// composite's intermediates on the tape. Inputs are x, then weight and bias where given; a customGrad closure
// is cheap, so one is made per call (it carries eps and which of the two are present).
function fused(eps: number, hasWeight: boolean, hasBias: boolean) {
  const attrs = { eps, hasWeight, hasBias };
  return tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args.pop() as tf.GradSaveFunc;
    const [x, ...affine] = args as tf.Tensor[];
    const w = hasWeight ? affine[0] : undefined;
    const b = hasBias ? affine[hasWeight ? 1 : 0] : undefined;
    const [y, mean, r] = runFusedKernel('PeftTsLayerNorm', { x: x!, ...(w ? { weight: w } : {}), ...(b ? { bias: b } : {}) }, attrs);
    save([x!, mean!, r!, ...(w ? [w] : [])]);
    return {
      value: y!,
      gradFunc: (dy, saved) => {
        const [xs, ms, rs, ws] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor | undefined];
        const inputs = { dy: dy as tf.Tensor, x: xs, mean: ms, rstd: rs, ...(ws ? { weight: ws } : {}) };
        return runFusedKernel('PeftTsLayerNormGrad', inputs, attrs);
      },
    };
  });
}

/**
 * PyTorch's `F.layer_norm` over the last `numDims` dims as one fused kernel forward and one backward, or `null`
 * where the backend has no fused kernels or the inputs are not float32 with `weight`/`bias` of the normalised shape.
 */
export function fusedLayerNorm(
  x: tf.Tensor,
  numDims: number,
  weight: tf.Tensor | null,
  bias: tf.Tensor | null,
  eps: number,
): tf.Tensor | null {
  if (!fusedKernelsActive() || x.dtype !== 'float32' || numDims < 1 || x.rank < numDims || x.size === 0) return null;
  const tail = x.shape.slice(x.rank - numDims);
  const fits = (p: tf.Tensor | null): boolean => p === null || (p.dtype === 'float32' && tf.util.arraysEqual(p.shape, tail));
  if (!fits(weight) || !fits(bias)) return null;
  return tf.tidy(() => {
    const size = tail.reduce((a, d) => a * d, 1);
    const params = [weight, bias].filter((p): p is tf.Tensor => p !== null).map((p) => tf.reshape(p, [size]));
    const x2 = tf.reshape(x, [-1, size]);
    const inputs = { x: x2, ...(params[0] && weight ? { weight: params[0] } : {}), ...(bias ? { bias: params[params.length - 1]! } : {}) };
    const y = recordingGradients()
      ? fused(eps, weight !== null, bias !== null)(x2, ...params)
      : runFusedKernel('PeftTsLayerNorm', inputs, { eps, hasWeight: weight !== null, hasBias: bias !== null })[0]!;
    return tf.reshape(y, x.shape);
  });
}

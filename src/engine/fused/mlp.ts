import { tf } from '../tf.js';
import { fusedKernelsActive, recordingGradients, runFusedKernel } from './fused-op.js';

/** One of an MLP's projections: `x Wᵀ + b`, W `[out, in]`. */
export interface FrozenLinear {
  weight: tf.Variable;
  bias: tf.Variable | null;
}

/**
 * `down(silu(gate(x)) * up(x))` (a Llama-family MLP) as one kernel each way, for weights that do not train:
 * gradients flow to x only. Undefined where the backend has no fused kernels, an input is not float32, the
 * projections differ in having biases, or a weight would need a gradient (a tape records and it is trainable):
 * the caller then composes the projections.
 */
export function fusedFrozenMlp(x: tf.Tensor, gate: FrozenLinear, up: FrozenLinear, down: FrozenLinear): tf.Tensor | undefined {
  if (!fusedKernelsActive() || x.dtype !== 'float32' || x.size === 0 || x.shape[x.rank - 1] !== gate.weight.shape[1]) return undefined;
  const layers = [gate, up, down];
  const bias = gate.bias !== null;
  if (layers.some((l) => (l.bias !== null) !== bias || l.weight.dtype !== 'float32')) return undefined;
  const tape = recordingGradients();
  if (tape && layers.some((l) => l.weight.trainable || l.bias?.trainable)) return undefined;
  const named: Record<string, tf.Tensor> = {};
  for (const [name, l] of [['gate', gate], ['up', up], ['down', down]] as const) {
    named[`${name}_w`] = l.weight;
    if (l.bias) named[`${name}_b`] = l.bias;
  }
  const width = x.shape[x.rank - 1]!;
  return tf.tidy(() => {
    const x2 = tf.reshape(x, [-1, width]);
    if (!tape) return tf.reshape(runFusedKernel('PeftTsFrozenMlp', { x: x2, ...named }, { withActivations: false })[0]!, x.shape);
    const f = tf.customGrad((xi, save) => {
      const [y, g, u] = runFusedKernel('PeftTsFrozenMlp', { x: xi as tf.Tensor, ...named }, { withActivations: true });
      (save as tf.GradSaveFunc)([g!, u!]);
      return {
        value: y!,
        gradFunc: (dy, saved) => {
          const [gs, us] = saved as tf.Tensor[];
          return runFusedKernel('PeftTsFrozenMlpGrad', { dy: dy as tf.Tensor, g: gs!, u: us!, gate_w: gate.weight, up_w: up.weight, down_w: down.weight })[0]!;
        },
      };
    });
    return tf.reshape(f(x2), x.shape);
  });
}

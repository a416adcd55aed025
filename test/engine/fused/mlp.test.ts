// fusedFrozenMlp (a SwiGLU MLP whose weights do not train, one graph each way) on the onnxruntime backend against
// TF.js's cpu backend composing down(silu(gate(x)) * up(x)): values and the gradient w.r.t. x, with and without
// biases; and the cases it must leave to the composed MLP.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { setBackend } from '../../../src/engine/index.js';
import { fusedFrozenMlp } from '../../../src/engine/fused/mlp.js';
import { tf } from '../../../src/engine/tf.js';
import { maxAbsDiff, ortAvailable, rand, runOn, toTensor } from './_fused.js';

const [batch, seq, hidden, inner] = [2, 5, 12, 20];

describe('fusedFrozenMlp', { skip: ortAvailable ? false : 'onnxruntime-node is not installed' }, () => {
  for (const withBias of [false, true]) {
    const x = rand([batch, seq, hidden]);
    const dy = rand([batch, seq, hidden]);
    const w = { gate: rand([inner, hidden]), up: rand([inner, hidden]), down: rand([hidden, inner]) };
    const b = { gate: rand([inner]), up: rand([inner]), down: rand([hidden]) };
    const compute = (): tf.Tensor[] => {
      const layer = (p: 'gate' | 'up' | 'down') => ({ weight: tf.variable(toTensor(w[p]), false), bias: withBias ? tf.variable(toTensor(b[p]), false) : null });
      const [gate, up, down] = [layer('gate'), layer('up'), layer('down')];
      const linear = (t: tf.Tensor, l: ReturnType<typeof layer>) => {
        const y = tf.matMul(tf.reshape(t, [-1, t.shape[2]!]), l.weight, false, true);
        return tf.reshape(l.bias ? tf.add(y, l.bias) : y, [batch, seq, -1]);
      };
      const mlp = (t: tf.Tensor): tf.Tensor =>
        tf.getBackend() === 'onnxruntime' ? fusedFrozenMlp(t, gate, up, down)! : linear(tf.mul(tf.mul(linear(t, gate), tf.sigmoid(linear(t, gate))), linear(t, up)), down);
      const xt = toTensor(x);
      const [dx] = tf.grads((t: tf.Tensor) => tf.mul(mlp(t), toTensor(dy)).sum())([xt]);
      const out = [mlp(xt), dx!];
      tf.dispose([gate, up, down].flatMap((l) => [l.weight, ...(l.bias ? [l.bias] : [])]));
      return out;
    };

    it(`matches the cpu composition in value and dx${withBias ? ', with biases' : ''}`, async () => {
      const cpu = await runOn('cpu', compute);
      const ort = await runOn('onnxruntime', compute);
      for (const [i, what] of ['output', 'dx'].entries()) {
        assert.deepEqual(ort[i]!.shape, cpu[i]!.shape, what);
        const diff = maxAbsDiff(ort[i]!.values, cpu[i]!.values);
        assert.ok(diff < 1e-5, `${what}: ${diff}`);
      }
    });
  }

  it('leaves trainable weights under a tape, mixed biases and mismatched widths to the composed MLP', async () => {
    await setBackend('onnxruntime');
    tf.tidy(() => {
      const x = tf.ones([1, 2, 4]);
      const frozen = (out: number, inF: number, bias = false) => ({ weight: tf.variable(tf.ones([out, inF]), false), bias: bias ? tf.variable(tf.zeros([out]), false) : null });
      const [gate, up, down] = [frozen(6, 4), frozen(6, 4), frozen(4, 6)];
      assert.ok(fusedFrozenMlp(x, gate, up, down), 'frozen weights fuse');
      const trainable = { weight: tf.variable(tf.ones([6, 4]), true), bias: null };
      assert.ok(fusedFrozenMlp(x, trainable, up, down), 'without a tape a trainable weight is just a constant');
      tf.grad((t: tf.Tensor) => {
        assert.equal(fusedFrozenMlp(t, trainable, up, down), undefined, 'trainable gate under a tape');
        return t.sum();
      })(x);
      const biased = frozen(6, 4, true);
      assert.equal(fusedFrozenMlp(x, biased, up, down), undefined, 'a bias on one projection only');
      assert.equal(fusedFrozenMlp(tf.ones([1, 2, 5]), gate, up, down), undefined, 'input width 5 for weights of width 4');
      tf.dispose([gate, up, down, trainable, biased].flatMap((l) => [l.weight, ...(l.bias ? [l.bias] : [])]));
    });
  });
});

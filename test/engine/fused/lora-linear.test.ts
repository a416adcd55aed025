// fusedLoraLinear (x Wᵀ + b + (s · x Aᵀ) Bᵀ with a frozen base, one graph each way) on the onnxruntime backend
// against TF.js's cpu backend composing it: the value and the gradients w.r.t. x, A and B; and a LoRA training
// step of a Llama model through it against the same step with fused kernels off.
import { strict as assert } from 'node:assert';
import { after, before, describe, it } from 'node:test';
import { setOrtMinElements } from '../../../src/engine/onnx/kernels/define.js';
import { setBackend, setFusedKernels } from '../../../src/engine/index.js';
import { fusedLoraLinear } from '../../../src/engine/fused/lora-linear.js';
import { tf } from '../../../src/engine/tf.js';
import { LlamaForCausalLM } from '../../../src/models/llama/index.js';
import { getPeftModel } from '../../../src/peft-model.js';
import { LoraConfig } from '../../../src/tuners/lora/config.js';
import { assertAllClose } from '../../helpers/assert.js';
import { seedLoraWeights } from '../../tuners/xlora/fixture.js';
import { maxAbsDiff, ortAvailable, rand, runOn, toTensor } from './_fused.js';

const [batch, seq, inF, outF, r, scale] = [2, 5, 12, 10, 3, 1.75];

describe('fusedLoraLinear', { skip: ortAvailable ? false : 'onnxruntime-node is not installed' }, () => {
  // These shapes are small enough to stay in JavaScript by default; here everything goes to ONNX Runtime.
  let minElements = 0;
  before(() => {
    minElements = setOrtMinElements(0);
  });
  after(() => {
    setOrtMinElements(minElements);
  });

  for (const withBias of [false, true]) {
    const x = rand([batch, seq, inF]);
    const dy = rand([batch, seq, outF]);
    const [w, b, a, bb] = [rand([outF, inF]), rand([outF]), rand([r, inF]), rand([outF, r])];
    const compute = (): tf.Tensor[] => {
      const base = { weight: tf.variable(toTensor(w), false), bias: withBias ? tf.variable(toTensor(b), false) : null };
      const layer = (xt: tf.Tensor, at: tf.Tensor, bt: tf.Tensor): tf.Tensor => {
        if (tf.getBackend() === 'onnxruntime') return fusedLoraLinear(xt, base, at, bt, scale)!;
        const x2 = tf.reshape(xt, [-1, inF]);
        let y = tf.matMul(x2, base.weight, false, true);
        if (base.bias) y = tf.add(y, base.bias);
        const low = tf.matMul(tf.mul(tf.matMul(x2, at, false, true), scale), bt, false, true);
        return tf.reshape(tf.add(y, low), [batch, seq, outF]);
      };
      const [xt, at, bt] = [toTensor(x), toTensor(a), toTensor(bb)];
      const grads = tf.grads((p: tf.Tensor, q: tf.Tensor, s: tf.Tensor) => tf.mul(layer(p, q, s), toTensor(dy)).sum())([xt, at, bt]);
      const out = [layer(xt, at, bt), ...grads];
      tf.dispose([base.weight, ...(base.bias ? [base.bias] : [])]);
      return out;
    };

    it(`matches the cpu composition in value and the gradients of x, A, B${withBias ? ', with a bias' : ''}`, async () => {
      const cpu = await runOn('cpu', compute);
      const ort = await runOn('onnxruntime', compute);
      for (const [i, what] of ['output', 'dx', 'dA', 'dB'].entries()) {
        assert.deepEqual(ort[i]!.shape, cpu[i]!.shape, what);
        const diff = maxAbsDiff(ort[i]!.values, cpu[i]!.values);
        assert.ok(diff < 1e-5, `${what}: ${diff}`);
      }
    });
  }

  it('a LoRA training step of a Llama runs through it and gives the composed step\'s loss and gradients', async () => {
    await setBackend('onnxruntime');
    const config = { vocab_size: 40, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 32 };
    const peft = getPeftModel(new LlamaForCausalLM(config, { seed: 2 }), new LoraConfig({ r: 4, loraAlpha: 8, targetModules: ['q_proj', 'v_proj', 'down_proj'], initLoraWeights: false }));
    try {
      seedLoraWeights(peft, 'default', 3);
      peft.train();
      const vars = peft.parameters().filter((p) => p.trainable);
      const ids = [[1, 5, 9, 2, 7, 3], [4, 4, 8, 1, 0, 6]];
      const step = () => tf.variableGrads(() => peft.forward({ inputIds: ids, labels: ids }).loss!, vars);
      const info = await tf.profile(() => {
        const { value, grads } = step();
        tf.dispose(Object.values(grads));
        return value;
      });
      assert.equal(info.kernels.filter((k) => k.name === 'PeftTsLoraLinearGrad').length, 6, 'q, v and down of two layers');
      (info.result as tf.Tensor).dispose();
      const fused = step();
      const previous = setFusedKernels(false);
      const composed = step();
      setFusedKernels(previous);
      try {
        assertAllClose(fused.value, composed.value, { atol: 1e-5, rtol: 1e-5 }, 'loss');
        for (const name of Object.keys(composed.grads)) assertAllClose(fused.grads[name]!, composed.grads[name]!, { atol: 1e-5, rtol: 1e-4 }, name);
      } finally {
        tf.dispose([fused.value, composed.value, ...Object.values(fused.grads), ...Object.values(composed.grads)]);
      }
    } finally {
      peft.dispose();
    }
  });
});

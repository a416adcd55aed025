import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { setBackend } from '../../src/engine/index.js';
import { tf } from '../../src/engine/tf.js';
import { StateDictError } from '../../src/errors.js';
import { Dropout, Embedding, GELU, LayerNorm, Linear, Module, ModuleList, Sequential } from '../../src/nn/index.js';
import type { StateDict } from '../../src/nn/index.js';
import { assertAllClose } from '../helpers/assert.js';
import { ref } from './_reference.js';

process.env['PEFT_TS_QUIET'] = '1';

// The same architecture as `Net` in fixtures/gen_nn_reference.py.
class Block extends Module {
  attn = this.registerModule('attn', new Linear(4, 4, { seed: 1 }));
  mlp = this.registerModule('mlp', new Sequential(new Linear(4, 8, { seed: 2 }), new GELU(), new Linear(8, 4, { seed: 3 })));
  ln = this.registerModule('ln', new LayerNorm(4));
  drop = this.registerModule('drop', new Dropout(0.1));
}

class Net extends Module {
  wte = this.registerModule('wte', new Embedding(10, 4, { paddingIdx: 0, seed: 4 }));
  h = this.registerModule('h', new ModuleList([new Block(), new Block()]));
  ln_f = this.registerModule('ln_f', new LayerNorm(4));
  lm_head = this.registerModule('lm_head', new Linear(4, 10, { bias: false }));
  final = this.registerModule('final', this.ln_f); // the same module under a second name

  constructor() {
    super();
    this.lm_head.tieParameter('weight', this.wte.weight); // tied, as `self.lm_head.weight = self.wte.weight`
  }
}

function snapshot(m: Module): Record<string, number[]> {
  return Object.fromEntries(Object.entries(m.stateDict()).map(([k, v]) => [k, [...v.dataSync()]]));
}

function catchStateDictError(fn: () => unknown): StateDictError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof StateDictError, `expected StateDictError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected StateDictError');
}

describe('Module', () => {
  before(async () => {
    await setBackend('cpu');
  });

  test('namedModules, namedParameters, stateDict keys and printout match PyTorch', () => {
    const net = new Net();
    assert.deepEqual([...net.namedModules()].map(([n]) => n), ref.module.named_modules);
    assert.deepEqual([...net.namedParameters()].map(([n]) => n), ref.module.named_parameters);
    assert.deepEqual(Object.keys(net.stateDict()), ref.module.state_dict);
    assert.equal(net.toString(), ref.module.repr);
    net.dispose();
  });

  test('tied parameter: listed once by namedParameters, under both keys in stateDict, one variable', () => {
    const net = new Net();
    const sd = net.stateDict();
    assert.equal(sd['wte.weight'], sd['lm_head.weight']);
    assert.equal(net.lm_head.weight, net.wte.weight);
    assert.equal([...net.namedParameters()].filter(([, p]) => p === net.wte.weight).length, 1);
    const counted = net.numParameters();
    const own = [...net.namedParameters()].reduce((n, [, p]) => n + p.size, 0);
    assert.equal(counted, own);
    // the Linear uses the tied weight
    const x = tf.tensor([[1, 0, 0, 0]]);
    assertAllClose(net.lm_head.forward(x), tf.slice(tf.transpose(net.wte.weight), [0, 0], [1, 10]));
    // setParameter by dotted path: the first name in pre-order is the one namedParameters keeps
    const replaced = net.h.at(0).attn.weight;
    net.setParameter('h.0.attn.weight', net.h.at(1).attn.weight);
    assert.ok(replaced.isDisposed);
    assert.equal(net.h.at(0).attn.weight, net.h.at(1).attn.weight);
    const names = [...net.namedParameters()].map(([n]) => n);
    assert.ok(names.includes('h.0.attn.weight') && !names.includes('h.1.attn.weight'));
    assert.ok('h.1.attn.weight' in net.stateDict());
    net.dispose();
  });

  test('getSubmodule resolves dotted paths and rejects unknown ones', () => {
    const net = new Net();
    assert.equal(net.getSubmodule('h.1.mlp.2'), net.h.at(1).mlp.at(2));
    assert.equal(net.getSubmodule(''), net);
    assert.throws(() => net.getSubmodule('h.2'), /no submodule "2"/);
    net.dispose();
  });

  test('loadStateDict strict: missing, unexpected and shape mismatch throw with the lists and modify nothing', () => {
    const net = new Net();
    const before = snapshot(net);
    const good = Object.fromEntries(Object.entries(net.stateDict()).map(([k, v]) => [k, tf.add(v, 1)]));

    const missing: StateDict = { ...good };
    delete missing['h.0.attn.bias'];
    delete missing['final.weight'];
    let e = catchStateDictError(() => net.loadStateDict(missing));
    assert.deepEqual(e.missingKeys, ['h.0.attn.bias', 'final.weight']);
    assert.deepEqual(e.unexpectedKeys, []);
    assert.deepEqual(e.shapeMismatches, []);
    assert.equal(e.code, 'state_dict');
    assert.deepEqual(snapshot(net), before);

    const extra: StateDict = { ...good, 'h.0.attn.lora_A.weight': tf.zeros([2, 4]), constructor: tf.zeros([1]) };
    e = catchStateDictError(() => net.loadStateDict(extra));
    assert.deepEqual(e.missingKeys, []);
    assert.deepEqual(e.unexpectedKeys, ['h.0.attn.lora_A.weight', 'constructor']);
    assert.deepEqual(snapshot(net), before);

    const wrong: StateDict = { ...good, 'h.1.mlp.0.weight': tf.zeros([4, 8]) };
    e = catchStateDictError(() => net.loadStateDict(wrong));
    assert.deepEqual(e.shapeMismatches, [{ key: 'h.1.mlp.0.weight', expected: [8, 4], actual: [4, 8] }]);
    assert.match(e.message, /h\.1\.mlp\.0\.weight expects \[8, 4\] but got \[4, 8\]/);
    assert.deepEqual(snapshot(net), before);
    // shape mismatches throw in non-strict mode too
    assert.throws(() => net.loadStateDict(wrong, { strict: false }), StateDictError);
    assert.deepEqual(snapshot(net), before);

    // the good dict loads every value
    const report = net.loadStateDict(good);
    assert.deepEqual(report, { missingKeys: [], unexpectedKeys: [] });
    for (const [k, v] of Object.entries(snapshot(net))) assertAllClose(v, before[k]!.map((x) => x + 1), undefined, k);
    net.dispose();
  });

  test('loadStateDict non-strict loads the matching keys and reports the rest; Map input; dtype cast; no leak', () => {
    const net = new Net();
    const before = snapshot(net);
    const dict = new Map<string, tf.Tensor>([
      ['ln_f.weight', tf.tensor([2, 3, 4, 5], [4], 'int32')],
      ['h.0.attn.bias', tf.tensor([1, 2, 3, 4])],
      ['something.else', tf.zeros([3])],
    ]);
    const tensorsBefore = tf.memory().numTensors;
    const report = net.loadStateDict(dict, { strict: false });
    assert.equal(tf.memory().numTensors, tensorsBefore, 'loading does not leak (cast included)');
    assert.deepEqual(report.unexpectedKeys, ['something.else']);
    assert.ok(report.missingKeys.includes('wte.weight') && !report.missingKeys.includes('ln_f.weight'));
    assert.equal(net.ln_f.weight!.dtype, 'float32');
    assert.deepEqual([...net.ln_f.weight!.dataSync()], [2, 3, 4, 5]);
    assert.deepEqual([...net.getSubmodule('final').stateDict()['weight']!.dataSync()], [2, 3, 4, 5]);
    assert.deepEqual([...net.h.at(0).attn.bias!.dataSync()], [1, 2, 3, 4]);
    assert.deepEqual([...net.h.at(1).attn.bias!.dataSync()], before['h.1.attn.bias']);
    // the caller keeps ownership of its tensors
    for (const t of dict.values()) assert.equal(t.isDisposed, false);
    for (const t of dict.values()) t.dispose();
    assert.deepEqual([...net.h.at(0).attn.bias!.dataSync()], [1, 2, 3, 4]);
    net.dispose();
  });

  test('setSubmodule replaces the child and the property, at any depth and inside ModuleList', () => {
    const net = new Net();
    const oldAttn = net.h.at(0).attn;
    const newAttn = new Linear(4, 4, { bias: false, seed: 9 });
    net.setSubmodule('h.0.attn', newAttn);
    assert.equal(net.h.at(0).attn, newAttn);
    assert.equal(net.getSubmodule('h.0.attn'), newAttn);
    assert.ok(!Object.keys(net.stateDict()).includes('h.0.attn.bias'));
    assert.deepEqual([...net.namedModules()].map(([n]) => n), ref.module.named_modules);

    const newBlock = new Block();
    net.setSubmodule('h.1', newBlock);
    assert.equal(net.h.at(1), newBlock);
    assert.deepEqual([...net.h], [net.h.at(0), newBlock]);
    assert.equal(net.getSubmodule('h.1.mlp'), newBlock.mlp);

    const newLn = new LayerNorm(4, { eps: 1e-6 });
    net.setSubmodule('ln_f', newLn);
    assert.equal(net.ln_f, newLn);
    assert.equal(net.getSubmodule('final') === newLn, false, 'the other name of the shared module is unchanged');

    // Sequential children too
    const act = new GELU({ approximate: 'tanh' });
    net.setSubmodule('h.0.mlp.1', act);
    assert.equal(net.h.at(0).mlp.at(1), act);
    assert.throws(() => net.setSubmodule('h.5', new Block()), RangeError);
    oldAttn.dispose();
    net.dispose();
  });

  test('train() / eval() propagate to every descendant', () => {
    const net = new Net();
    assert.ok(net.modules().every((m) => m.training));
    net.eval();
    assert.ok(net.modules().every((m) => !m.training));
    const x = tf.ones([2, 4]);
    assertAllClose(net.h.at(0).drop.forward(x), x);
    net.h.at(1).train();
    assert.equal(net.h.at(1).drop.training, true);
    assert.equal(net.h.at(0).drop.training, false);
    assert.equal(net.train(), net);
    assert.ok(net.modules().every((m) => m.training));
    net.dispose();
  });

  test('requiresGrad sets trainable on all parameters and freezes them for variableGrads', () => {
    const net = new Net();
    net.requiresGrad(false);
    assert.ok(net.parameters().every((p) => !p.trainable));
    assert.equal(net.numParameters({ trainableOnly: true }), 0);
    net.h.at(0).attn.requiresGrad(true);
    assert.deepEqual(
      [...net.namedParameters()].filter(([, p]) => p.trainable).map(([n]) => n),
      ['h.0.attn.weight', 'h.0.attn.bias'],
    );
    assert.equal(net.numParameters({ trainableOnly: true }), 20);
    const x = tf.ones([1, 4]);
    const { grads, value } = tf.variableGrads(() => tf.sum(net.h.at(0).mlp.forward(net.h.at(0).attn.forward(x))) as tf.Scalar);
    const names = new Set(Object.keys(grads));
    assert.ok(names.has(net.h.at(0).attn.weight.name) && names.has(net.h.at(0).attn.bias!.name));
    assert.ok(!names.has((net.h.at(0).mlp.at(0) as Linear).weight.name), 'frozen parameters get no gradient');
    value.dispose();
    for (const g of Object.values(grads)) g.dispose();
    net.dispose();
  });

  test('dispose frees every parameter and buffer (tied and shared ones once)', () => {
    const baseline = tf.memory().numTensors;
    const net = new Net();
    const params = net.parameters();
    assert.ok(tf.memory().numTensors > baseline);
    net.dispose();
    assert.equal(tf.memory().numTensors, baseline);
    assert.ok(params.every((p) => p.isDisposed));
  });

  test('buffers: persistent ones are in the state dict and load; non-persistent ones are not', () => {
    class WithBuffers extends Module {
      constructor() {
        super();
        this.registerBuffer('running', tf.zeros([3]));
        this.registerBuffer('cache', tf.ones([2]), { persistent: false });
        this.registerModule('lin', new Linear(2, 2, { seed: 1 }));
      }
    }
    const baseline = tf.memory().numTensors;
    const m = new WithBuffers();
    assert.deepEqual(Object.keys(m.stateDict()), ['running', 'lin.weight', 'lin.bias']);
    assert.deepEqual([...m.namedBuffers()].map(([n]) => n), ['running', 'cache']);
    const value = tf.tensor([1, 2, 3]);
    m.loadStateDict({ running: value }, { strict: false });
    value.dispose();
    assert.deepEqual([...m.stateDict()['running']!.dataSync()], [1, 2, 3]);
    m.dispose();
    assert.equal(tf.memory().numTensors, baseline);
  });
});

// LoHa adapters saved by Python PEFT 0.21.2 load and run with PEFT's outputs: the Llama one through the shared
// adapter suite, the tiny-convnet ones (Conv1d, Conv2d 3x3 and 1x1, Linear; flat and Tucker form) through the
// convnet suite below, on the TS twin of the fixture's Python model.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setBackend } from '../../../src/engine/index.js';
import type { tf } from '../../../src/engine/index.js';
import { loadSafetensors } from '../../../src/io/index.js';
import { PeftModel } from '../../../src/peft-model.js';
import { LoHaLayer } from '../../../src/tuners/loha/layer.js';
import { assertNoLeak } from '../../helpers/assert.js';
import { adapterParitySuite, maxAbsDiff, repoRoot } from '../adapter-parity-suite.js';
import { TinyConvNet } from '../tiny-convnet.js';

adapterParitySuite(['loha-llama']);

const manifest = JSON.parse(readFileSync(join(repoRoot, 'test/fixtures/parity/manifest.json'), 'utf8')) as {
  fixtures: Record<string, { tolerance?: { float32_max_abs?: number } }>;
};

interface ConvReference {
  adapted_modules: string[];
  adapter_files: Record<string, { name: string; shape: number[] }[]>;
}

function convnetParitySuite(name: string, expectTucker: readonly string[]): void {
  const dir = join(repoRoot, 'test/fixtures/parity/adapters', name);
  describe(`adapter parity with PEFT: ${name} (tiny-convnet)`, { skip: existsSync(join(dir, 'reference.json')) ? false : `no fixture ${name}` }, () => {
    const tol = manifest.fixtures[`adapters/${name}`]?.tolerance?.float32_max_abs ?? 1e-4;
    let ref: ConvReference;
    let tensors: Map<string, tf.Tensor>;
    let peft: PeftModel<TinyConvNet>;
    const run = () => peft.forward(tensors.get('x')!);
    const check = (actual: tf.Tensor, key: string) => {
      const expected = tensors.get(key);
      assert.ok(expected, `reference has ${key}`);
      const err = maxAbsDiff(actual, expected);
      actual.dispose();
      assert.ok(err <= tol, `${key}: max abs error ${err} > ${tol}`);
    };

    before(async () => {
      await setBackend();
      ref = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as ConvReference;
      tensors = await loadSafetensors(join(dir, 'reference.safetensors'));
      peft = await PeftModel.fromPretrained(await TinyConvNet.fromFixture(), dir);
    });
    after(() => {
      peft?.dispose();
      for (const t of tensors?.values() ?? []) t.dispose();
    });

    test('every adapted module is a LoHa layer, Tucker form exactly where PEFT used it', () => {
      const layers = peft.base_model.tunerLayers();
      assert.deepEqual(layers.map(([p]) => p).sort(), [...ref.adapted_modules].sort());
      for (const [path, layer] of layers) {
        assert.ok(layer instanceof LoHaLayer, path);
        assert.equal(layer.isEffective('default'), expectTucker.includes(path), path);
      }
    });

    test('outputs with the adapter match PEFT', () => check(run(), 'logits'));

    test('disabled adapters give the base model', () => check(peft.disableAdapter(run), 'disabled.logits'));

    test('merged outputs and merged weights match PEFT; unmerging restores the adapter outputs', () => {
      peft.mergeAdapter({ safeMerge: true });
      check(run(), 'merged.logits');
      const sd = peft.model.stateDict();
      for (const [key, expected] of tensors) {
        if (!key.startsWith('merged.') || key.endsWith('.logits')) continue;
        const path = key.slice('merged.'.length);
        const owner = path.slice(0, path.lastIndexOf('.'));
        const actual = sd[`${owner}.base_layer.weight`];
        assert.ok(actual, `model has ${path}`);
        const err = maxAbsDiff(actual, expected);
        assert.ok(err <= tol, `${key}: max abs error ${err}`);
      }
      peft.unmergeAdapter();
      check(run(), 'logits');
    });

    test('mergeAndUnload on a fresh copy gives PEFT merged outputs', async () => {
      const other = await PeftModel.fromPretrained(await TinyConvNet.fromFixture(), dir);
      const plain = other.mergeAndUnload();
      assert.equal(plain.conv2d.constructor.name, 'Conv2d');
      check(plain.forward(tensors.get('x')!), 'merged.logits');
      plain.dispose();
    });

    test('savePretrained writes the same tensors PEFT wrote (keys, shapes, values)', async () => {
      const out = mkdtempSync(join(tmpdir(), 'peft-ts-loha-'));
      try {
        await peft.savePretrained(out);
        const theirs = await loadSafetensors(join(dir, 'adapter_model.safetensors'));
        const ours = await loadSafetensors(join(out, 'adapter_model.safetensors'));
        assert.deepEqual([...ours.keys()].sort(), [...theirs.keys()].sort());
        for (const { name: key, shape } of ref.adapter_files['adapter_model.safetensors']!) assert.deepEqual(ours.get(key)!.shape, shape, key);
        for (const [k, v] of theirs) assert.equal(maxAbsDiff(ours.get(k)!, v), 0, k);
        for (const m of [theirs, ours]) for (const v of m.values()) v.dispose();
        const config = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
        const original = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
        for (const field of ['peft_type', 'r', 'alpha', 'rank_pattern', 'alpha_pattern', 'use_effective_conv2d', 'init_weights', 'base_model_name_or_path']) {
          assert.deepEqual(config[field], original[field], field);
        }
        assert.deepEqual(new Set(config['target_modules'] as string[]), new Set(original['target_modules'] as string[]));
        // And what we wrote loads back to the same outputs.
        const reloaded = await PeftModel.fromPretrained(await TinyConvNet.fromFixture(), out);
        check(reloaded.forward(tensors.get('x')!), 'logits');
        reloaded.dispose();
      } finally {
        rmSync(out, { recursive: true, force: true });
      }
    });

    test('no tensor leaks across repeated forward / merge / unmerge / disable', async () => {
      run().dispose();
      await assertNoLeak(() => {
        for (let i = 0; i < 3; i++) {
          run().dispose();
          peft.mergeAdapter();
          run().dispose();
          peft.unmergeAdapter();
          peft.disableAdapter(run).dispose();
        }
      }, 'LoHa convnet forward/merge/unmerge');
    });
  });
}

convnetParitySuite('loha-convnet-flat', []);
convnetParitySuite('loha-convnet-effective', ['conv1d', 'conv2d']);

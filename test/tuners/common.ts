// Shared checks for adapter tests, after PEFT's `tests/testing_common.py`: each `check*` builds its own models from
// a `ModelSpec` and an adapter config, runs one behaviour end to end, frees everything, and asserts that no tensor
// leaked. Outputs are compared as copied Float32Arrays so no check holds tensors across steps.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tf } from '../../src/engine/index.js';
import { MergeError } from '../../src/errors.js';
import { SafetensorsFile } from '../../src/io/index.js';
import type { Module, Parameter } from '../../src/nn/index.js';
import { PeftModel, getPeftModel } from '../../src/peft-model.js';
import type { AdaptableModel } from '../../src/peft-model.js';
import type { AnyPeftConfig } from '../../src/tuners/registry.js';
import { ModulesToSaveWrapper } from '../../src/tuners/modules-to-save.js';
import { isTunerLayer } from '../../src/tuners/tuner-layer.js';
import type { BaseTunerLayer } from '../../src/tuners/tuner-layer.js';
import { assertAllClose } from '../helpers/assert.js';

/** How the checks build, feed and run one kind of model. */
export interface ModelSpec<M extends AdaptableModel = AdaptableModel> {
  /** A fresh base model: every call returns a new model with the same weights. */
  makeBase(): M;
  /** The input batch (the caller frees it). */
  input(): tf.Tensor;
  /** One forward pass of the base model or of a PeftModel over it, to one output tensor. */
  run(model: M | PeftModel<M>, x: tf.Tensor): tf.Tensor;
}

// ------------------------------------------------------------------------------------------- small helpers

/** The model's output for the spec's input, copied out of TF.js (nothing stays allocated). */
export function outputOf<M extends AdaptableModel>(spec: ModelSpec<M>, model: M | PeftModel<M>): Float32Array {
  const x = spec.input();
  try {
    const y = spec.run(model, x);
    const data = Float32Array.from(y.dataSync());
    y.dispose();
    return data;
  } finally {
    x.dispose();
  }
}

const ADAPTER_SEGMENT = /(^|\.)(lora_[A-Za-z_]+|modules_to_save)\./;

/**
 * Copies of the base model's parameters, keyed by their name in the plain model (`lin0.weight`, never
 * `lin0.base_layer.weight`), so a wrapped model compares with the model it came from. Adapter tensors are left out.
 */
export function baseWeights(model: Module): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [name, param] of model.namedParameters()) {
    if (ADAPTER_SEGMENT.test(name)) continue;
    out.set(name.replaceAll('.base_layer.', '.').replaceAll('.original_module.', '.'), Float32Array.from(param.dataSync()));
  }
  return out;
}

/** Every parameter of `model`, copied (adapter tensors included), by full name. */
export function allWeights(model: Module): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [name, param] of model.namedParameters()) out.set(name, Float32Array.from(param.dataSync()));
  return out;
}

function bytesOf(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** Same keys and the same bits (NaN payloads and -0 included). */
export function assertBitIdentical(actual: Map<string, Float32Array> | Float32Array, expected: Map<string, Float32Array> | Float32Array, what = ''): void {
  if (actual instanceof Float32Array || expected instanceof Float32Array) {
    assert.ok(actual instanceof Float32Array && expected instanceof Float32Array, `${what}: compare arrays with arrays`);
    assert.equal(actual.length, expected.length, `${what}: length`);
    assert.ok(bytesOf(actual).equals(bytesOf(expected)), `${what}: not bit-identical (max abs diff ${maxAbsDiff(actual, expected)})`);
    return;
  }
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort(), `${what}: keys`);
  for (const [key, value] of expected) assertBitIdentical(actual.get(key)!, value, `${what} ${key}`);
}

/** Elementwise |a - b| <= atol for arrays, or for every entry of two maps with the same keys. */
export function assertClose(actual: Map<string, Float32Array> | Float32Array, expected: Map<string, Float32Array> | Float32Array, atol: number, what = ''): void {
  if (actual instanceof Float32Array || expected instanceof Float32Array) {
    assert.ok(actual instanceof Float32Array && expected instanceof Float32Array, `${what}: compare arrays with arrays`);
    assertAllClose(actual, expected, { atol, rtol: 0 }, what);
    return;
  }
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort(), `${what}: keys`);
  for (const [key, value] of expected) assertAllClose(actual.get(key)!, value, { atol, rtol: 0 }, `${what} ${key}`);
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= worst)) worst = Number.isNaN(d) ? Infinity : d;
  }
  return worst;
}

/** Asserts the two outputs differ somewhere by more than `atol`: what makes an equality check able to fail. */
export function assertDiffers(a: Float32Array, b: Float32Array, atol = 1e-3, what = 'outputs'): void {
  assert.ok(maxAbsDiff(a, b) > atol, `${what} should differ (max abs diff ${maxAbsDiff(a, b)} <= ${atol})`);
}

/** Adapter layers and modules-to-save wrappers anywhere in `model`. */
export function adapterModules(model: Module): string[] {
  return [...model.namedModules()].filter(([, m]) => isTunerLayer(m) || m instanceof ModulesToSaveWrapper).map(([n]) => n);
}

/** The parameters adapter `name` owns: its tensors in every adapter layer, and its modules-to-save copies. */
export function adapterTensors(peft: PeftModel, name: string): Map<string, Parameter> {
  const out = new Map<string, Parameter>();
  for (const [path, layer] of peft.base_model.tunerLayers()) {
    for (const [key, param] of layer.namedParameters()) {
      if (key.startsWith('base_layer.')) continue;
      const parts = key.split('.');
      if (parts[1] === name) out.set(`${path}.${key}`, param);
    }
  }
  for (const [path, wrapper] of peft.base_model.modulesToSaveWrappers()) {
    const copy = wrapper.modules_to_save.get(name);
    if (copy) for (const [key, param] of copy.namedParameters()) out.set(`${path}.modules_to_save.${name}.${key}`, param);
  }
  return out;
}

/** Names of the trainable parameters of `module`, as `namedParameters` gives them. */
export function trainableNames(module: Module): string[] {
  return [...module.namedParameters()].filter(([, p]) => p.trainable).map(([n]) => n).sort();
}

/** Overwrites the first tensor of `adapterName` in the tuner layer at `layerIndex` (-1: the last) with NaN. */
export function poisonAdapter(peft: PeftModel, adapterName: string, layerIndex = -1): string {
  const [path, layer] = peft.base_model.tunerLayers().at(layerIndex)!;
  const entry = [...layer.namedParameters()].find(([key]) => !key.startsWith('base_layer.') && key.split('.')[1] === adapterName);
  assert.ok(entry, `layer ${path} holds adapter ${adapterName}`);
  const nan = tf.fill(entry[1].shape, NaN);
  entry[1].assign(nan);
  nan.dispose();
  return `${path}.${entry[0]}`;
}

/** Runs `fn` with console.warn and console.log muted (PEFT-style warnings, printTrainableParameters). */
export async function quietly<T>(fn: () => T | Promise<T>): Promise<T> {
  const { warn, log } = console;
  console.warn = () => undefined;
  console.log = () => undefined;
  try {
    return await fn();
  } finally {
    console.warn = warn;
    console.log = log;
  }
}

/** Runs `fn` with console.warn captured; returns its result and the warnings. */
export async function captureWarnings<T>(fn: () => T | Promise<T>): Promise<{ result: T; warnings: string[] }> {
  const warnings: string[] = [];
  const { warn } = console;
  console.warn = (...args: unknown[]) => void warnings.push(args.map(String).join(' '));
  try {
    return { result: await fn(), warnings };
  } finally {
    console.warn = warn;
  }
}

/** A fresh temporary folder, removed after `fn`. */
export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'peft-ts-tuners-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Key -> shape of a safetensors file, from its header. */
export async function savedShapes(path: string): Promise<Map<string, number[]>> {
  const file = await SafetensorsFile.open(path);
  try {
    return new Map(file.keys().map((k) => [k, [...file.info(k).shape]]));
  } finally {
    await file.close();
  }
}

/** Asserts that `fn` throws an instance of `cls` with `code` (never the message text). */
export function assertThrowsCode(fn: () => unknown, cls: abstract new (...args: never[]) => Error, code: string, what = ''): Error {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof cls, `${what}: expected ${cls.name}, got ${caught instanceof Error ? `${caught.constructor.name}: ${caught.message}` : String(caught)}`);
  assert.equal((caught as Error & { code?: string }).code, code, `${what}: code`);
  return caught;
}

export async function assertRejectsCode(fn: () => Promise<unknown>, cls: abstract new (...args: never[]) => Error, code: string, what = ''): Promise<Error> {
  let caught: unknown;
  try {
    await fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof cls, `${what}: expected ${cls.name}, got ${caught instanceof Error ? `${caught.constructor.name}: ${caught.message}` : String(caught)}`);
  assert.equal((caught as Error & { code?: string }).code, code, `${what}: code`);
  return caught;
}

/** Runs `fn` and asserts the live tensor count is back where it started afterwards. */
export async function leakFree(what: string, fn: () => Promise<void> | void): Promise<void> {
  const before = tf.memory().numTensors;
  await fn();
  const after = tf.memory().numTensors;
  assert.equal(after, before, `${what} leaked ${after - before} tensor(s)`);
}

function mergedLayers(peft: PeftModel): string[] {
  return peft.base_model.tunerLayers().filter(([, l]) => l.merged).map(([n]) => n);
}

function eachLayer(peft: PeftModel): BaseTunerLayer[] {
  return peft.base_model.tunerLayers().map(([, l]) => l);
}

// ------------------------------------------------------------------------------------------- the checks

/**
 * PEFT's `_test_merge_layers` and `_test_merge_layers_is_idempotent`: a non-identity adapter changes the output;
 * merged output equals unmerged (1e-5); merging again changes no bit; unmerging restores the base weights (1e-6)
 * and the adapted output; `mergeAndUnload` hands back the user's model with no adapter layer left, giving the merged
 * output.
 */
export async function checkMergeLayers<M extends AdaptableModel>(spec: ModelSpec<M>, config: AnyPeftConfig): Promise<void> {
  await leakFree('merge', () => {
    const base = spec.makeBase();
    const baseOut = outputOf(spec, base);
    const pristine = baseWeights(base);
    const peft = getPeftModel(base, config).eval();
    try {
      const unmerged = outputOf(spec, peft);
      assertDiffers(unmerged, baseOut, 1e-3, 'adapted vs base output');

      peft.mergeAdapter();
      assert.ok(eachLayer(peft).every((l) => l.merged), 'every adapter layer merged');
      const merged = outputOf(spec, peft);
      assertClose(merged, unmerged, 1e-5, 'merged vs unmerged');
      const mergedWeights = baseWeights(peft.model);
      assert.ok([...mergedWeights].some(([k, v]) => maxAbsDiff(v, pristine.get(k)!) > 1e-6), 'merging changed the base weights');

      peft.mergeAdapter();
      assertBitIdentical(baseWeights(peft.model), mergedWeights, 'merging twice');
      assertBitIdentical(outputOf(spec, peft), merged, 'output after merging twice');

      peft.unmergeAdapter();
      assert.deepEqual(mergedLayers(peft), [], 'nothing merged after unmerge');
      assertClose(baseWeights(peft.model), pristine, 1e-6, 'base weights after unmerge');
      assertClose(outputOf(spec, peft), unmerged, 1e-5, 'output after unmerge');
      peft.unmergeAdapter(); // nothing merged: a no-op
      assertClose(baseWeights(peft.model), pristine, 1e-6, 'base weights after a second unmerge');

      const plain = peft.mergeAndUnload();
      assert.equal(plain, base, 'mergeAndUnload returns the user model');
      assert.deepEqual(adapterModules(plain), [], 'no adapter layer after mergeAndUnload');
      assert.ok([...plain.namedParameters()].every(([n]) => !ADAPTER_SEGMENT.test(n) && !n.includes('base_layer')), 'plain parameter names');
      assert.deepEqual([...baseWeights(plain).keys()].sort(), [...pristine.keys()].sort(), 'same parameters as the base model');
      const unloaded = outputOf(spec, plain);
      assertClose(unloaded, merged, 1e-5, 'mergeAndUnload output vs merged');
      assertClose(unloaded, unmerged, 1e-5, 'mergeAndUnload output vs unmerged');
    } finally {
      peft.dispose();
    }
  });
}

/**
 * PEFT's `_test_safe_merge`, plus what PEFT only promises per layer: a NaN adapter makes `safeMerge` throw a
 * MergeError before any base weight changes (in every layer, wherever the broken tensor is), and
 * `mergeAndUnload({ safeMerge })` leaves the adapted model in place.
 */
export async function checkSafeMerge<M extends AdaptableModel>(spec: ModelSpec<M>, config: AnyPeftConfig): Promise<void> {
  await leakFree('safe merge', () => {
    const peft = getPeftModel(spec.makeBase(), config).eval();
    try {
      const unmerged = outputOf(spec, peft);
      peft.mergeAdapter({ safeMerge: true });
      assertClose(outputOf(spec, peft), unmerged, 1e-5, 'safe-merged vs unmerged');
      peft.unmergeAdapter();
      const plain = peft.mergeAndUnload({ safeMerge: true });
      assert.deepEqual(adapterModules(plain), []);
      assertClose(outputOf(spec, plain), unmerged, 1e-5, 'mergeAndUnload({ safeMerge }) output');
    } finally {
      peft.dispose();
    }
  });
  for (const layerIndex of [0, -1]) {
    await leakFree('safe merge of a NaN adapter', () => {
      const peft = getPeftModel(spec.makeBase(), config).eval();
      try {
        const where = poisonAdapter(peft, 'default', layerIndex);
        const before = baseWeights(peft.model);
        const layers = adapterModules(peft.model);
        assertThrowsCode(() => peft.mergeAdapter({ safeMerge: true }), MergeError, 'merge', `safeMerge with NaN in ${where}`);
        assertBitIdentical(baseWeights(peft.model), before, `base weights after a refused safe merge (NaN in ${where})`);
        assert.deepEqual(mergedLayers(peft), [], 'no layer marked merged');
        assertThrowsCode(() => peft.mergeAndUnload({ safeMerge: true }), MergeError, 'merge', 'mergeAndUnload({ safeMerge })');
        assert.deepEqual(adapterModules(peft.model), layers, 'adapter layers still in place');
        assertBitIdentical(baseWeights(peft.model), before, 'base weights after a refused mergeAndUnload');
      } finally {
        peft.dispose();
      }
    });
  }
}

/**
 * PEFT's `_test_disable_adapters`: inside `disableAdapter` the output is the base model's, bit for bit, and the
 * adapters come back afterwards (also after `fn` throws). A merged model is unmerged when disabled.
 */
export async function checkDisableAdapters<M extends AdaptableModel>(spec: ModelSpec<M>, config: AnyPeftConfig): Promise<void> {
  await leakFree('disable', () => {
    const base = spec.makeBase();
    const baseOut = outputOf(spec, base);
    const peft = getPeftModel(base, config).eval();
    try {
      const adapted = outputOf(spec, peft);
      assertDiffers(adapted, baseOut);
      assertBitIdentical(peft.disableAdapter(() => outputOf(spec, peft)), baseOut, 'disabled output');
      assertBitIdentical(outputOf(spec, peft), adapted, 're-enabled output');
      assert.throws(() => peft.disableAdapter(() => {
        throw new RangeError('inside');
      }), RangeError);
      assertBitIdentical(outputOf(spec, peft), adapted, 'output after disableAdapter(fn) threw');

      peft.mergeAdapter();
      assertClose(peft.disableAdapter(() => outputOf(spec, peft)), baseOut, 1e-5, 'disabled output of a merged model');
      assert.deepEqual(mergedLayers(peft), [], 'disabling unmerged');
      assertClose(outputOf(spec, peft), adapted, 1e-5, 're-enabled output after a merged disable');
    } finally {
      peft.dispose();
    }
  });
}

/**
 * PEFT's delete tests: deleting a merged adapter is a MergeError that changes nothing; once unmerged, deleting frees
 * exactly the adapter's tensors, and with no adapter left the model gives the base output.
 */
export async function checkDeleteAdapter<M extends AdaptableModel>(spec: ModelSpec<M>, config: AnyPeftConfig): Promise<void> {
  await leakFree('delete', () => {
    const base = spec.makeBase();
    const baseOut = outputOf(spec, base);
    const peft = getPeftModel(base, config).eval();
    try {
      peft.mergeAdapter();
      assertThrowsCode(() => peft.deleteAdapter('default'), MergeError, 'merge', 'deleting a merged adapter');
      assert.ok(peft.peftConfig.has('default'));
      assert.ok(adapterTensors(peft, 'default').size > 0);
      peft.unmergeAdapter();

      const owned = adapterTensors(peft, 'default');
      const before = tf.memory().numTensors;
      peft.deleteAdapter('default');
      assert.equal(before - tf.memory().numTensors, owned.size, 'deleting freed exactly the adapter tensors');
      assert.ok([...owned.values()].every((p) => p.isDisposed), 'adapter tensors disposed');
      assert.equal(adapterTensors(peft, 'default').size, 0);
      assert.ok([...peft.namedParameters()].every(([n]) => !n.split('.').includes('default')), 'no parameter of "default" left');
      assert.equal(peft.peftConfig.size, 0);
      assert.deepEqual(peft.activeAdapters, []);
      // Merging and unmerging rounded the base weights: close, not bit-identical.
      assertClose(outputOf(spec, peft), baseOut, 1e-5, 'output with the only adapter deleted');
    } finally {
      peft.dispose();
    }
  });
}

/** `unload()` returns the user's model with its own layers back and nothing merged: the base output, bit for bit. */
export async function checkUnload<M extends AdaptableModel>(spec: ModelSpec<M>, config: AnyPeftConfig): Promise<void> {
  await leakFree('unload', () => {
    const base = spec.makeBase();
    const baseOut = outputOf(spec, base);
    const pristine = baseWeights(base);
    const peft = getPeftModel(base, config).eval();
    try {
      assertDiffers(outputOf(spec, peft), baseOut);
      const plain = peft.unload();
      assert.equal(plain, base);
      assert.deepEqual(adapterModules(plain), []);
      assertBitIdentical(baseWeights(plain), pristine, 'weights after unload');
      assertBitIdentical(outputOf(spec, plain), baseOut, 'unloaded output');
    } finally {
      peft.dispose();
    }
  });
}

/**
 * PEFT's `_test_save_pretrained`: `savePretrained` writes `adapter_model.safetensors` (exactly `expectedKeys`, with
 * those shapes) and `adapter_config.json`, no model files; `PeftModel.fromPretrained` on a fresh base gives the same
 * adapter tensors, bit for bit, and the same output, in inference mode (nothing trainable).
 */
export async function checkSaveLoad<M extends AdaptableModel>(spec: ModelSpec<M>, config: AnyPeftConfig, expectedKeys: Record<string, number[]>): Promise<void> {
  await withTempDir(async (dir) => {
    await leakFree('save/load', async () => {
      const peft = getPeftModel(spec.makeBase(), config).eval();
      let loaded: PeftModel<M> | undefined;
      try {
        const out = outputOf(spec, peft);
        const tensors = allWeights(peft);
        await peft.savePretrained(dir);
        assert.ok(existsSync(join(dir, 'adapter_config.json')));
        assert.ok(!existsSync(join(dir, 'config.json')) && !existsSync(join(dir, 'model.safetensors')), 'no base model files');
        const shapes = await savedShapes(join(dir, 'adapter_model.safetensors'));
        assert.deepEqual(Object.fromEntries([...shapes].sort(([a], [b]) => a.localeCompare(b))), sortKeys(expectedKeys), 'saved keys and shapes');
        const json = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
        assert.equal(json['inference_mode'], true);
        assert.equal(json['peft_type'], config.peftType);

        const { result, warnings } = await captureWarnings(() => PeftModel.fromPretrained(spec.makeBase(), dir));
        loaded = result;
        assert.deepEqual(warnings.filter((w) => /missing|Ignored/.test(w)), [], 'no missing or ignored keys');
        assertBitIdentical(allWeights(loaded), tensors, 'tensors after the round trip');
        assertBitIdentical(outputOf(spec, loaded), out, 'output after the round trip');
        assert.deepEqual(trainableNames(loaded), [], 'fromPretrained loads in inference mode');
        assert.equal(loaded.getNbTrainableParameters()[0], 0);
      } finally {
        peft.dispose();
        loaded?.dispose();
      }
    });
  });
}

function sortKeys<T>(o: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));
}

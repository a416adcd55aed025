// Parity of adapters saved by Python PEFT (test/fixtures/parity/adapters, made by tools/parity/generate_adapters.py):
// load them with PeftModel.fromPretrained onto the fixture's base model, then compare the outputs with the
// adapter, for each active set, disabled, merged (and the merged weights), unmerged, greedy decoding, and
// the file written back by savePretrained.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setBackend, tf } from '../../src/engine/index.js';
import { loadSafetensors } from '../../src/io/index.js';
import { AutoModelForCausalLM, AutoModelForSequenceClassification } from '../../src/models/auto.js';
import { PeftModel } from '../../src/peft-model.js';
import type { AdaptableModel } from '../../src/peft-model.js';

export const repoRoot = join(import.meta.dirname, '../..');
const manifestPath = join(repoRoot, 'test/fixtures/parity/manifest.json');

interface AdapterReference {
  name: string;
  base_model: string;
  adapter_names: string[];
  adapter_dirs: Record<string, string>;
  active_sets: string[][];
  adapted_modules: string[];
  generation?: { greedy_padded?: { kwargs: { max_new_tokens: number; eos_token_id: number; pad_token_id: number }; sequences: number[][] } };
}

type Outputs = { logits: tf.Tensor };

/** Max |a - b| over positions where `mask` ([batch, seq]) is 1, when logits are per token. */
export function maxAbsDiff(a: tf.Tensor, b: tf.Tensor, mask?: tf.Tensor): number {
  assert.deepEqual(a.shape, b.shape);
  return tf.tidy(() => {
    let diff = tf.abs(tf.sub(a, b));
    if (mask && a.rank === 3) diff = tf.mul(diff, tf.expandDims(tf.cast(mask, 'float32'), -1));
    return tf.max(diff).dataSync()[0]!;
  });
}

export function adapterParitySuite(names: string[]): void {
  const manifest = existsSync(manifestPath) ? (JSON.parse(readFileSync(manifestPath, 'utf8')) as { fixtures: Record<string, { tolerance?: { float32_max_abs?: number } }> }) : undefined;
  for (const name of names) {
    const dir = join(repoRoot, 'test/fixtures/parity/adapters', name);
    const skip = existsSync(join(dir, 'reference.json')) ? false : `no fixture adapters/${name}`;
    describe(`adapter parity with PEFT: ${name}`, { skip }, () => {
      const tol = manifest?.fixtures[`adapters/${name}`]?.tolerance?.float32_max_abs ?? 1e-4;
      let ref: AdapterReference;
      let tensors: Map<string, tf.Tensor>;
      let peft: PeftModel<AdaptableModel>;
      let seqCls = false;
      const inputs = () => {
        const base = { inputIds: tensors.get('input_ids')!, attentionMask: tensors.get('attention_mask')! };
        return tensors.has('token_type_ids') ? { ...base, tokenTypeIds: tensors.get('token_type_ids')! } : base;
      };
      const run = (): tf.Tensor => {
        const out = peft.forward(inputs() as never) as Outputs & Record<string, unknown>;
        for (const [k, v] of Object.entries(out)) if (k !== 'logits' && v instanceof tf.Tensor) v.dispose();
        return out.logits;
      };
      const check = (actual: tf.Tensor, key: string) => {
        const expected = tensors.get(key);
        assert.ok(expected, `reference has ${key}`);
        const err = maxAbsDiff(actual, expected, seqCls ? undefined : tensors.get('attention_mask'));
        actual.dispose();
        assert.ok(err <= tol, `${key}: max abs error ${err} > ${tol}`);
      };
      const setKey = (set: string[]) => (ref.active_sets.length > 1 ? `.${set.join('+')}` : '');
      const outKey = (set: string[], kind: '' | 'merged') => (kind ? `merged${setKey(set)}.logits` : ref.active_sets.length > 1 ? `active${setKey(set)}.logits` : 'logits');

      before(async () => {
        await setBackend();
        ref = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as AdapterReference;
        tensors = await loadSafetensors(join(dir, 'reference.safetensors'));
        const baseDir = join(repoRoot, ref.base_model);
        const config = JSON.parse(readFileSync(join(baseDir, 'config.json'), 'utf8')) as { architectures?: string[] };
        seqCls = (config.architectures?.[0] ?? '').endsWith('ForSequenceClassification');
        const model = (seqCls ? await AutoModelForSequenceClassification.fromPretrained(baseDir) : await AutoModelForCausalLM.fromPretrained(baseDir)) as unknown as AdaptableModel;
        const [first, ...rest] = ref.adapter_names;
        peft = await PeftModel.fromPretrained(model, join(dir, ref.adapter_dirs[first!]!), { adapterName: first! });
        for (const other of rest) await peft.loadAdapter(join(dir, ref.adapter_dirs[other]!), other);
      });
      after(() => {
        peft?.dispose();
        for (const t of tensors?.values() ?? []) t.dispose();
      });

      test('every adapted module matches the reference list', () => {
        const layers = [...peft.base_model.tunerLayers(), ...peft.base_model.modulesToSaveWrappers()];
        const adapted = layers.map(([path]) => path).sort();
        assert.deepEqual(adapted, [...ref.adapted_modules].sort());
      });

      test('outputs with each active adapter set match PEFT', () => {
        for (const set of ref.active_sets) {
          peft.setAdapter(set);
          check(run(), outKey(set, ''));
        }
        peft.setAdapter(ref.active_sets[0]!);
      });

      test('disabled adapters give the base model', () => {
        check(peft.disableAdapter(run), 'disabled.logits');
      });

      test('merged outputs and merged weights match PEFT; unmerging restores the adapter outputs', () => {
        for (const set of ref.active_sets) {
          if (!tensors.has(outKey(set, 'merged'))) continue;
          peft.setAdapter(set);
          peft.mergeAdapter();
          check(run(), outKey(set, 'merged'));
          const prefix = `merged${setKey(set)}.`;
          for (const [key, expected] of tensors) {
            if (!key.startsWith(prefix) || key.endsWith('.logits')) continue;
            const path = key.slice(prefix.length);
            const sd = peft.model.stateDict();
            const [owner, param] = [path.slice(0, path.lastIndexOf('.')), path.slice(path.lastIndexOf('.') + 1)];
            // The weight sits under an adapter layer's base_layer, or in a modules-to-save copy.
            const actual = sd[`${owner}.base_layer.${param}`] ?? sd[`${owner}.modules_to_save.${set[0]}.${param}`] ?? sd[path];
            assert.ok(actual, `model has ${path}`);
            const err = maxAbsDiff(actual, expected);
            assert.ok(err <= tol, `${key}: max abs error ${err}`);
          }
          peft.unmergeAdapter();
          check(run(), outKey(set, ''));
        }
        peft.setAdapter(ref.active_sets[0]!);
      });

      test('greedy decoding with the adapter gives PEFT tokens', { skip: seqCls ? 'not a causal LM' : false }, async (t) => {
        const g = ref.generation?.greedy_padded;
        if (!g || seqCls) return t.skip('no generation reference');
        const out = await peft.generate(tensors.get('input_ids')!, {
          attentionMask: tensors.get('attention_mask')!,
          maxNewTokens: g.kwargs.max_new_tokens,
          eosTokenId: g.kwargs.eos_token_id,
          padTokenId: g.kwargs.pad_token_id,
        });
        assert.deepEqual(out, g.sequences);
      });

      test('savePretrained writes the same tensors PEFT wrote (keys, shapes, values)', async () => {
        const out = mkdtempSync(join(tmpdir(), 'peft-ts-save-'));
        try {
          await peft.savePretrained(out);
          for (const adapter of ref.adapter_names) {
            const sub = adapter === 'default' ? '' : adapter;
            const theirs = await loadSafetensors(join(dir, ref.adapter_dirs[adapter]!, 'adapter_model.safetensors'));
            const ours = await loadSafetensors(join(out, sub, 'adapter_model.safetensors'));
            assert.deepEqual([...ours.keys()].sort(), [...theirs.keys()].sort());
            // Adapter tensors come back bit for bit; saved base weights (embeddings) went through merge/unmerge above.
            for (const [k, v] of theirs) assert.ok(maxAbsDiff(ours.get(k)!, v) <= (k.includes('.base_layer.') ? 1e-6 : 0), k);
            for (const m of [theirs, ours]) for (const v of m.values()) v.dispose();
            const config = JSON.parse(readFileSync(join(out, sub, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
            const original = JSON.parse(readFileSync(join(dir, ref.adapter_dirs[adapter]!, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
            assert.equal(config['peft_type'], original['peft_type']);
            assert.deepEqual(new Set(config['target_modules'] as string[]), new Set(original['target_modules'] as string[]));
          }
        } finally {
          rmSync(out, { recursive: true, force: true });
        }
      });
    });
  }
}

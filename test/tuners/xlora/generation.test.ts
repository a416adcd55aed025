// X-LoRA generation (spec xlora.md §8, §9): decoding with one KV cache per pass equals full recomputation, token for
// token and in the logged scalings (greedy and beam search, a left-padded batch of two); mistral.rs's non-granular
// mode freezes the scalings and skips the scaling pass after k decode steps; the scalings log survives a round trip
// through .npy files; nothing leaks across repeated generate calls.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setBackend, tf } from '../../../src/engine/index.js';
import type { CausalLMInput } from '../../../src/models/outputs.js';
import type { ForwardContext } from '../../../src/nn/context.js';
import { XLoraConfig, addXLoraToModel, loadScalingsLog } from '../../../src/tuners/xlora/index.js';
import type { XLoraGenerateOptions, XLoraModel } from '../../../src/tuners/xlora/index.js';
import { assertAllClose, assertNoLeak } from '../../helpers/assert.js';
import { saveExpert, tempDir, tinyLlama, values, withWarnings } from './fixture.js';

/** A left-padded batch of two (pad 0). */
const IDS = [
  [0, 0, 5, 9, 2],
  [3, 3, 7, 8, 11],
];
const MASK = [
  [0, 0, 1, 1, 1],
  [1, 1, 1, 1, 1],
];
const PROMPT = 5;
const NEW = 6;
/** No EOS: every row runs to NEW tokens, so the number of forwards is fixed. */
const BASE_OPTIONS: XLoraGenerateOptions = { attentionMask: MASK, maxNewTokens: NEW, eosTokenId: [], padTokenId: 0 };

interface ForwardRecord {
  mode: string | undefined;
  seq: number;
  /** The scalings the real pass mixed with (a copy), for 'mix' calls. */
  scalings?: number[];
}

/** Records every call of the base model's forward (both passes). */
function spyInner(xlora: XLoraModel): { calls: ForwardRecord[]; restore: () => void } {
  const inner = xlora.inner;
  const original = inner.forward.bind(inner);
  const calls: ForwardRecord[] = [];
  const record = (input: Pick<CausalLMInput, 'inputIds'>, ctx?: ForwardContext): void => {
    const seq = Array.isArray(input.inputIds) ? input.inputIds[0]!.length : input.inputIds.shape[1]!;
    const state = ctx?.xlora;
    calls.push({ mode: state?.mode, seq, ...(state?.mode === 'mix' ? { scalings: values(state.scalings!) } : {}) });
  };
  inner.forward = (input: CausalLMInput, ctx?: ForwardContext) => {
    record(input, ctx);
    return original(input, ctx);
  };
  // The scaling pass runs the decoder without the LM head.
  const originalHidden = inner.forwardHidden.bind(inner);
  inner.forwardHidden = (input, ctx) => {
    record(input, ctx);
    return originalHidden(input, ctx);
  };
  const restore = (): void => {
    Reflect.deleteProperty(inner, 'forward');
    Reflect.deleteProperty(inner, 'forwardHidden');
  };
  return { calls, restore };
}

/** Runs `fn` with logging on and returns the log (copies), leaving the log empty and disabled. */
async function logged<T>(xlora: XLoraModel, fn: () => Promise<T>): Promise<{ result: T; log: tf.Tensor[] }> {
  xlora.clearScalingsLog();
  xlora.enableScalingsLogging();
  try {
    const result = await fn();
    return { result, log: xlora.getScalingsLog().map((t) => t.clone()) };
  } finally {
    xlora.disableScalingsLogging();
    xlora.clearScalingsLog();
  }
}

/** `[B, S, L, C]` -> `[B, 1, L, C]` at position `s` (negative: from the end). */
function position(t: tf.Tensor, s: number): tf.Tensor {
  const at = s < 0 ? t.shape[1]! + s : s;
  return tf.slice(t, [0, at, 0, 0], [-1, 1, -1, -1]);
}

describe('X-LoRA generation', () => {
  const tmp = tempDir('xlora-gen-');
  let xlora: XLoraModel;
  let L: number;
  const C = 3;

  before(async () => {
    await setBackend();
    const specs = {
      a: { r: 4, loraAlpha: 8, targetModules: ['q_proj', 'v_proj'], seed: 100 },
      b: { r: 2, loraAlpha: 3, targetModules: ['q_proj'], seed: 200 },
      c: { r: 3, loraAlpha: 5, targetModules: ['v_proj', 'down_proj'], seed: 300, useRslora: true },
    };
    for (const [name, spec] of Object.entries(specs)) await saveExpert(join(tmp.dir, name), spec);
    const { result } = await withWarnings(() =>
      addXLoraToModel({
        model: tinyLlama(),
        xloraConfig: new XLoraConfig({ xloraDepth: 2, xloraSize: 16, layerwiseScalings: true, softmaxTemperature: 0.5 }),
        adapters: { a: join(tmp.dir, 'a'), b: join(tmp.dir, 'b'), c: join(tmp.dir, 'c') },
        seed: 5,
      }),
    );
    xlora = result.eval();
    L = xlora.numLayers;
  });
  after(() => {
    xlora?.dispose();
    tmp.cleanup();
  });

  for (const numBeams of [1, 3]) {
    const what = numBeams === 1 ? 'greedy' : `beam search (${numBeams} beams)`;
    test(`${what}: one cache per pass equals full recomputation, in tokens and in the logged scalings`, async () => {
      const options = { ...BASE_OPTIONS, numBeams };
      const cached = await logged(xlora, () => xlora.generate(IDS, { ...options, useCache: true }));
      const uncached = await logged(xlora, () => xlora.generate(IDS, { ...options, useCache: false }));
      try {
        assert.deepEqual(cached.result, uncached.result);
        assert.equal(cached.result[0]!.length, PROMPT + NEW);
        assert.deepEqual(cached.result.map((r) => r.slice(0, PROMPT)), IDS);
        const rows = 2 * numBeams;
        // Cached: the prompt, then one token per step; uncached: the whole prefix every step.
        assert.deepEqual(cached.log.map((t) => t.shape), Array.from({ length: NEW }, (_, t) => [rows, t === 0 ? PROMPT : 1, L, C]));
        assert.deepEqual(uncached.log.map((t) => t.shape), Array.from({ length: NEW }, (_, t) => [rows, PROMPT + t, L, C]));
        assertAllClose(cached.log[0]!, uncached.log[0]!, { atol: 1e-5, rtol: 1e-4 }, 'prompt scalings');
        for (let t = 1; t < NEW; t++) {
          const last = position(uncached.log[t]!, -1);
          assertAllClose(cached.log[t]!, last, { atol: 1e-5, rtol: 1e-4 }, `step ${t} scalings`);
          last.dispose();
          if (numBeams > 1) continue; // beams are reordered between steps
          // The uncached prefix re-predicts earlier steps' scalings identically (causality).
          const earlier = position(uncached.log[t]!, PROMPT + t - 2);
          const previous = position(uncached.log[t - 1]!, -1);
          assertAllClose(earlier, previous, { atol: 1e-5, rtol: 1e-4 }, `step ${t} prefix`);
          earlier.dispose();
          previous.dispose();
        }
        // The scalings really vary from token to token (the check above is not vacuous).
        const spread = tf.tidy(() => tf.sub(tf.max(cached.log[0]!), tf.min(cached.log[0]!)).dataSync()[0]!);
        assert.ok(spread > 0.1, `scalings spread ${spread}`);
      } finally {
        for (const t of [...cached.log, ...uncached.log]) t.dispose();
      }
    });
  }

  test('non-granular mode: after k decode steps the scalings freeze and the scaling pass is skipped', async () => {
    const k = 2;
    const exactSpy = spyInner(xlora);
    const exact = await logged(xlora, () => xlora.generate(IDS, BASE_OPTIONS));
    exactSpy.restore();
    const spy = spyInner(xlora);
    const approx = await logged(xlora, () => xlora.generate(IDS, { ...BASE_OPTIONS, nonGranularAfter: k }));
    spy.restore();
    try {
      assert.equal(exactSpy.calls.length, 2 * NEW, 'exact: two passes per forward');
      // Both passes are cached: after the prompt each runs on the new token only.
      assert.deepEqual(exactSpy.calls.map((c) => c.seq), [PROMPT, PROMPT, ...Array.from({ length: 2 * (NEW - 1) }, () => 1)]);
      assert.deepEqual(exactSpy.calls.map((c) => c.mode), Array.from({ length: NEW }, () => ['base', 'mix']).flat());
      // Prompt and k decode steps with both passes, then one (real) pass per remaining step.
      assert.equal(spy.calls.length, 2 * (1 + k) + (NEW - 1 - k));
      assert.deepEqual(
        spy.calls.map((c) => c.mode),
        [...Array.from({ length: 1 + k }, () => ['base', 'mix']).flat(), ...Array.from({ length: NEW - 1 - k }, () => 'mix')],
      );
      // Logged entries stop after the freeze; the latest scalings are the frozen ones.
      assert.equal(approx.log.length, 1 + k);
      const latest = xlora.getLatestScalings()!;
      assert.deepEqual(values(latest), values(approx.log.at(-1)!));
      latest.dispose();
      // The real pass mixes with the frozen (step k) scalings from then on.
      const mixes = spy.calls.filter((c) => c.mode === 'mix').map((c) => c.scalings!);
      for (let step = k + 1; step < NEW; step++) assert.deepEqual(mixes[step], mixes[k], `decode step ${step} uses the frozen scalings`);
      assert.notDeepEqual(mixes[k], mixes[k - 1], 'the scalings changed until the freeze');
      // Until the freeze everything is exact: the first k + 1 new tokens and the logged entries.
      assert.deepEqual(
        approx.result.map((r) => r.slice(0, PROMPT + k + 1)),
        exact.result.map((r) => r.slice(0, PROMPT + k + 1)),
      );
      approx.log.forEach((t, i) => assertAllClose(t, exact.log[i]!, { atol: 0, rtol: 0 }, `entry ${i}`));
    } finally {
      for (const t of [...exact.log, ...approx.log]) t.dispose();
    }
  });

  test('non-granular mode with k >= the new tokens is the exact mode (greedy and beam)', async () => {
    for (const numBeams of [1, 3]) {
      const exact = await xlora.generate(IDS, { ...BASE_OPTIONS, numBeams });
      for (const k of [NEW, NEW + 4]) {
        const spy = spyInner(xlora);
        const out = await xlora.generate(IDS, { ...BASE_OPTIONS, numBeams, nonGranularAfter: k });
        spy.restore();
        assert.deepEqual(out, exact, `beams ${numBeams}, k ${k}`);
        assert.equal(spy.calls.length, 2 * NEW, `beams ${numBeams}, k ${k}: every forward has its scaling pass`);
      }
    }
  });

  test('scalings log round trip, one file: entries of one sequence length', async () => {
    const path = join(tmp.dir, 'single');
    xlora.clearScalingsLog();
    xlora.enableScalingsLogging();
    try {
      for (let i = 0; i < 3; i++) {
        const out = xlora.forward({ inputIds: IDS, attentionMask: MASK });
        out.logits.dispose();
      }
      const expected = xlora.getScalingsLog().map((t) => values(t));
      assert.equal(expected.length, 3);
      await xlora.flushLogScalings(path);
      assert.equal(xlora.getScalingsLog().length, 0, 'flush clears the log');
      assert.ok(existsSync(`${path}.npy`));
      assert.ok(!existsSync(`${path}-mapping.json`));
      for (const p of [path, `${path}.npy`]) {
        const loaded = await loadScalingsLog(p);
        assert.deepEqual(loaded.map((t) => t.shape), Array.from({ length: 3 }, () => [1, 2, PROMPT, L, C]));
        loaded.forEach((t, i) => assert.deepEqual(values(t), expected[i], `entry ${i} (${p})`));
        for (const t of loaded) t.dispose();
      }
    } finally {
      xlora.disableScalingsLogging();
      xlora.clearScalingsLog();
    }
  });

  for (const useCache of [false, true]) {
    test(`scalings log round trip, several files: ${useCache ? 'cached' : 'uncached'} generation`, async () => {
      const path = join(tmp.dir, `multi-${useCache}`);
      xlora.clearScalingsLog();
      xlora.enableScalingsLogging();
      try {
        await xlora.generate(IDS, { ...BASE_OPTIONS, maxNewTokens: 4, useCache });
        const expected = xlora.getScalingsLog().map((t) => ({ shape: t.shape, data: values(t) }));
        const lengths = useCache ? [PROMPT, 1, 1, 1] : [PROMPT, PROMPT + 1, PROMPT + 2, PROMPT + 3];
        assert.deepEqual(expected.map((e) => e.shape[1]), lengths);
        await xlora.flushLogScalings(path);
        const mapping = JSON.parse(readFileSync(`${path}-mapping.json`, 'utf8')) as Record<string, number[]>;
        const buckets = useCache ? { [`${path}-${PROMPT}.npy`]: [0], [`${path}-1.npy`]: [1, 2, 3] } : Object.fromEntries(lengths.map((s, i) => [`${path}-${s}.npy`, [i]]));
        assert.deepEqual(mapping, buckets);
        const loaded = await loadScalingsLog(path);
        assert.equal(loaded.length, 4);
        loaded.forEach((t, i) => {
          assert.deepEqual(t.shape, [1, ...expected[i]!.shape]);
          assert.deepEqual(values(t), expected[i]!.data, `entry ${i}`);
        });
        for (const t of loaded) t.dispose();
      } finally {
        xlora.disableScalingsLogging();
        xlora.clearScalingsLog();
      }
    });
  }

  test('no tensor leaks across 10 generate calls: cached, uncached, beam, non-granular', async () => {
    const modes: [string, XLoraGenerateOptions][] = [
      ['cached', { ...BASE_OPTIONS, maxNewTokens: 3 }],
      ['uncached', { ...BASE_OPTIONS, maxNewTokens: 3, useCache: false }],
      ['beam', { ...BASE_OPTIONS, maxNewTokens: 3, numBeams: 3 }],
      ['non-granular', { ...BASE_OPTIONS, maxNewTokens: 4, nonGranularAfter: 1 }],
      ['beam, non-granular', { ...BASE_OPTIONS, maxNewTokens: 4, numBeams: 3, nonGranularAfter: 1 }],
    ];
    for (const [, options] of modes) await xlora.generate(IDS, options); // warm-up: the latest-scalings slot
    for (const [what, options] of modes) {
      await assertNoLeak(async () => {
        for (let i = 0; i < 10; i++) await xlora.generate(IDS, options);
      }, what);
    }
  });
});

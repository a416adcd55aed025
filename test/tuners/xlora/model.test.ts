// X-LoRA semantics (spec xlora.md §3–§6, §14) checked against hand computations on a tiny seeded Llama with three
// LoRA experts built and saved here: the classifier maths, the per-token per-layer mixing, top-k and softmax-top-k,
// global weight, per-expert alpha/r and rsLoRA, experts missing modules, layer numbering, the scaling pass value,
// classifier dropout, trainability, runtime setters and config errors. Every expected value is computed in plain
// JavaScript (classifier, softmax, top-k) or on a separately built model with the experts merged by hand; nothing
// is computed by the code under test.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setBackend, tf } from '../../../src/engine/index.js';
import { AdapterLoadError, ConfigError } from '../../../src/errors.js';
import { loadSafetensors } from '../../../src/io/index.js';
import type { LlamaForCausalLM } from '../../../src/models/llama/index.js';
import { disposeOutput } from '../../../src/models/outputs.js';
import type { CausalLMInput, CausalLMOutput } from '../../../src/models/outputs.js';
import { Linear } from '../../../src/nn/linear.js';
import type { ForwardContext } from '../../../src/nn/context.js';
import { getPeftModel } from '../../../src/peft-model.js';
import { LoHaConfig } from '../../../src/tuners/loha/config.js';
import type { XLoraConfigOptions } from '../../../src/tuners/xlora/config.js';
import { XLoraConfig, XLoraModel, addXLoraToModel, fromPretrained } from '../../../src/tuners/xlora/index.js';
import { assertAllClose } from '../../helpers/assert.js';
import { HIDDEN, VOCAB, loraLayers, saveExpert, tempDir, tinyLlama, values, withWarnings } from './fixture.js';
import type { ExpertSpec } from './fixture.js';

type Matrix = number[][];

// ------------------------------------------------------------------------------------------- hand maths

/** A tensor's values as rows of its last axis. */
function rows(t: tf.Tensor): Matrix {
  const data = t.dataSync();
  const cols = t.shape.at(-1)!;
  return Array.from({ length: t.size / cols }, (_, i) => Array.from(data.subarray(i * cols, (i + 1) * cols)));
}

/** W x + b, W [out][in]. */
function affine(x: readonly number[], w: Matrix, b: readonly number[] | null = null): number[] {
  return w.map((row, o) => row.reduce((s, wi, i) => s + wi * x[i]!, b ? b[o]! : 0));
}

function softmax(v: readonly number[], temperature = 1): number[] {
  const m = Math.max(...v) / temperature;
  const e = v.map((x) => Math.exp(x / temperature - m));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / z);
}

/**
 * A layer's effective scalings from its [C] row: keep the k largest (no renormalisation), then optionally a
 * softmax over the kept entries only (per token, as PEFT after #2793).
 */
function effective(row: readonly number[], topK: number | null, softmaxTopk: boolean): number[] {
  const order = [...row.keys()].sort((i, j) => row[j]! - row[i]! || i - j);
  const kept = new Set(topK === null ? order : order.slice(0, topK));
  const masked = row.map((x, i) => (kept.has(i) ? x : 0));
  if (!softmaxTopk) return masked;
  const keptIdx = [...kept];
  const sm = softmax(keptIdx.map((i) => masked[i]!));
  const out = row.map(() => 0);
  keptIdx.forEach((i, j) => (out[i] = sm[j]!));
  return out;
}

interface Head {
  layerwise: boolean;
  enableSoftmax: boolean;
  temperature: number;
  numLayers: number;
  numExperts: number;
}

/** The classifier by hand: Linear, ReLU, ..., Linear on each token's hidden state, then [L][C] and softmax(/T). */
function scalingsByHand(xlora: XLoraModel, hidden: Matrix, head: Head & { relu?: boolean }): number[][][] {
  const linears = [...xlora.internal_xlora_classifier.layers].filter((m): m is Linear => m instanceof Linear);
  const params = linears.map((l) => ({ w: rows(l.weight), b: l.bias ? values(l.bias) : null }));
  const { numLayers: L, numExperts: C } = head;
  return hidden.map((x) => {
    let a: number[] = [...x];
    params.forEach(({ w, b }, i) => {
      a = affine(a, w, b);
      if (i < params.length - 1 && head.relu !== false) a = a.map((v) => Math.max(v, 0));
    });
    assert.equal(a.length, head.layerwise ? L * C : C);
    return Array.from({ length: L }, (_, l) => {
      const logits = head.layerwise ? a.slice(l * C, (l + 1) * C) : a.slice(0, C);
      return head.enableSoftmax ? softmax(logits, head.temperature) : logits;
    });
  });
}

/** The final-norm hidden states (`hiddenStates[-1]`) of a model, one row per token. */
function lastHidden(model: LlamaForCausalLM, inputIds: number[][]): Matrix {
  const out = model.forward({ inputIds, outputHiddenStates: true });
  const h = rows(out.hiddenStates!.at(-1)!);
  disposeOutput(out);
  return h;
}

function logitsOf(model: { forward(input: CausalLMInput): CausalLMOutput }, inputIds: number[][]): tf.Tensor {
  const out = model.forward({ inputIds });
  out.loss?.dispose();
  for (const h of out.hiddenStates ?? []) h.dispose();
  return out.logits;
}

/** Wraps `xlora.inner.forward` to record each call's input and the scaling pass's last hidden state. */
function spyInner(xlora: XLoraModel): { calls: CausalLMInput[]; scalingPassHidden: () => Matrix; restore: () => void } {
  const inner = xlora.inner;
  const original = inner.forward.bind(inner);
  const calls: CausalLMInput[] = [];
  let hidden: Matrix = [];
  inner.forward = (input: CausalLMInput, ctx?: ForwardContext) => {
    const out = original(input, ctx);
    calls.push(input);
    if (input.outputHiddenStates) hidden = rows(out.hiddenStates!.at(-1)!);
    return out;
  };
  // The scaling pass runs the decoder without the LM head.
  const originalHidden = inner.forwardHidden.bind(inner);
  inner.forwardHidden = (input, ctx) => {
    const out = originalHidden(input, ctx);
    calls.push(input);
    if (input.outputHiddenStates) hidden = rows(out.hiddenStates!.at(-1)!);
    return out;
  };
  const restore = (): void => {
    Reflect.deleteProperty(inner, 'forward');
    Reflect.deleteProperty(inner, 'forwardHidden');
  };
  return { calls, scalingPassHidden: () => hidden, restore };
}

// ------------------------------------------------------------------------------------------- fixtures

const IDS = [
  [1, 5, 9, 2, 7],
  [3, 3, 7, 8, 11],
];

/** Expert b misses v_proj and down_proj, a misses down_proj, c misses q_proj; c uses rsLoRA. */
const EXPERTS: Record<'a' | 'b' | 'c', ExpertSpec> = {
  a: { r: 4, loraAlpha: 8, targetModules: ['q_proj', 'v_proj'], seed: 100 },
  b: { r: 2, loraAlpha: 3, targetModules: ['q_proj'], seed: 200 },
  c: { r: 3, loraAlpha: 5, targetModules: ['v_proj', 'down_proj'], seed: 300, useRslora: true },
};
const NAMES = ['a', 'b', 'c'] as const;
/** alpha / r, and alpha / sqrt(r) for rsLoRA. */
const GAMMA = [8 / 4, 3 / 2, 5 / Math.sqrt(3)];
/** Pre-order (namedModules) positions of the wrapped modules: the layer index ℓ. */
const MODULES = [0, 1].flatMap((i) => [`model.layers.${i}.self_attn.q_proj`, `model.layers.${i}.self_attn.v_proj`, `model.layers.${i}.mlp.down_proj`]);
const L = MODULES.length;
const C = NAMES.length;

/** Experts on lm_head only (L = 1), so a forward is computable in closed form from the base hidden states. */
const HEAD_EXPERTS: Record<'h1' | 'h2' | 'h3', ExpertSpec> = {
  h1: { r: 4, loraAlpha: 8, targetModules: ['lm_head'], seed: 110, loraBias: true },
  h2: { r: 2, loraAlpha: 3, targetModules: ['lm_head'], seed: 210 },
  h3: { r: 3, loraAlpha: 5, targetModules: ['lm_head'], seed: 310, useRslora: true },
};

/** Embedding experts (PEFT's lora_embedding_A/B). */
const EMBEDDING_EXPERTS: Record<'e1' | 'e2', ExpertSpec> = {
  e1: { r: 2, loraAlpha: 4, targetModules: ['embed_tokens'], seed: 120 },
  e2: { r: 3, loraAlpha: 3, targetModules: ['embed_tokens', 'q_proj'], seed: 220 },
};

describe('X-LoRA model semantics against hand computations', () => {
  const tmp = tempDir('xlora-model-');
  const dirs: Record<string, string> = {};
  /** Expert name -> its saved tensors (read back from the files, independent of the model under test). */
  const weights = new Map<string, Map<string, tf.Tensor>>();
  let baseH: Matrix;

  const build = (options: XLoraConfigOptions = {}, names: readonly string[] = NAMES, seed = 5) =>
    withWarnings(() =>
      addXLoraToModel({
        model: tinyLlama(),
        xloraConfig: new XLoraConfig(options),
        adapters: Object.fromEntries(names.map((n) => [n, dirs[n]!])),
        seed,
      }),
    ).then(({ result }) => result);

  /** The base model with every expert c merged into module ℓ with factor coef(ℓ, c) · γ_c. */
  const mergedModel = (coef: (l: number, c: number) => number): LlamaForCausalLM => {
    const model = tinyLlama();
    MODULES.forEach((path, l) => {
      const linear = model.getSubmodule(path) as Linear;
      NAMES.forEach((name, c) => {
        const w = weights.get(name)!;
        const a = w.get(`base_model.model.${path}.lora_A.weight`);
        const b = w.get(`base_model.model.${path}.lora_B.weight`);
        assert.equal(a === undefined, !EXPERTS[name].targetModules.some((m) => path.endsWith(m)), `${name} at ${path}`);
        if (!a || !b) return;
        const next = tf.tidy(() => tf.add(linear.weight, tf.mul(tf.matMul(b, a), coef(l, c) * GAMMA[c]!)));
        linear.weight.assign(next);
        next.dispose();
      });
    });
    return model;
  };

  before(async () => {
    await setBackend();
    for (const [name, spec] of Object.entries({ ...EXPERTS, ...HEAD_EXPERTS, ...EMBEDDING_EXPERTS })) {
      dirs[name] = join(tmp.dir, name);
      await saveExpert(dirs[name], spec);
      weights.set(name, await loadSafetensors(join(dirs[name], 'adapter_model.safetensors')));
    }
    const base = tinyLlama();
    baseH = lastHidden(base, IDS);
    base.dispose();
  });
  after(() => {
    for (const m of weights.values()) for (const t of m.values()) t.dispose();
    tmp.cleanup();
  });

  test('layer index ℓ is the pre-order position of each LoRA-wrapped module; experts keep their config order', async () => {
    const xlora = await build();
    try {
      assert.deepEqual(xlora.experts, ['a', 'b', 'c']);
      assert.equal(xlora.numLayers, L);
      assert.deepEqual(
        loraLayers(xlora.inner).map(([path]) => path),
        MODULES,
      );
      const [, b] = loraLayers(xlora.inner).find(([p]) => p === 'model.layers.0.self_attn.v_proj')!;
      assert.deepEqual([...b.lora_A.keys()].sort(), ['a', 'c'], 'v_proj holds experts a and c only');
    } finally {
      xlora.dispose();
    }
  });

  for (const [label, options] of [
    ['depth 1, not layerwise', { xloraDepth: 1 }],
    ['depth 1, layerwise, T 0.5', { xloraDepth: 1, layerwiseScalings: true, softmaxTemperature: 0.5 }],
    ['depth 2, not layerwise', { xloraDepth: 2, xloraSize: 16 }],
    ['depth 2, layerwise, T 2', { xloraDepth: 2, xloraSize: 16, layerwiseScalings: true, softmaxTemperature: 2 }],
    ['depth 3, original layout without ReLU/dropout and biases', { xloraDepth: 3, xloraSize: 8, enableReluAndDropout: false, useBias: false }],
  ] as const) {
    test(`scalings = softmax(classifier(hidden_states[-1] of the base) / T), ${label}`, async () => {
      const xlora = await build(options);
      try {
        xlora.eval();
        const plain = 'enableReluAndDropout' in options;
        if (options.xloraDepth === 2) assert.deepEqual(xlora.internal_xlora_classifier.linearIndices(), [0, 3], 'Linear, ReLU, Dropout, Linear');
        if (plain) {
          assert.deepEqual(xlora.internal_xlora_classifier.linearIndices(), [0, 1, 2], 'Linear, Linear, Linear');
          assert.equal(xlora.internal_xlora_classifier.parameters().length, 3, 'no biases');
        }
        logitsOf(xlora, IDS).dispose();
        const actual = xlora.getLatestScalings()!;
        assert.deepEqual(actual.shape, [2, 5, L, C]);
        const head = {
          layerwise: 'layerwiseScalings' in options && options.layerwiseScalings,
          enableSoftmax: true,
          temperature: 'softmaxTemperature' in options ? options.softmaxTemperature : 1,
          numLayers: L,
          numExperts: C,
          relu: !plain,
        };
        assertAllClose(actual, scalingsByHand(xlora, baseH, head).flat(2), { atol: 1e-5, rtol: 1e-4 }, label);
        actual.dispose();
      } finally {
        xlora.dispose();
      }
    });
  }

  test('layerwise output unit ℓ·C + c is the logit of layer ℓ, expert c', async () => {
    const xlora = await build({ layerwiseScalings: true, enableSoftmax: false });
    try {
      const [last] = [...xlora.internal_xlora_classifier.layers] as Linear[];
      last!.weight.assign(tf.zerosLike(last!.weight));
      last!.bias!.assign(tf.range(0, L * C, 1, 'float32'));
      logitsOf(xlora, IDS).dispose();
      const s = xlora.getLatestScalings()!;
      const expected = Array.from({ length: 10 }, () => Array.from({ length: L * C }, (_, u) => u)).flat();
      assert.deepEqual(values(s), expected);
      s.dispose();
    } finally {
      xlora.dispose();
    }
  });

  // Constant scalings (classifier weight 0, bias V, no softmax) make the real pass equal to the base model with each
  // expert merged into each layer with its effective scaling: checks ℓ order, missing experts, γ_i, g and top-k.
  const V = (l: number, c: number) => ((l * 7 + c * 3) % 11) / 10 - 0.3;
  for (const [label, options, g] of [
    ['dense, g 1', {}, 1],
    ['g 0.5', {}, 0.5],
    ['top-k 2 (no renormalisation), g 1.5', { topKLora: 2 }, 1.5],
    ['top-k 1', { topKLora: 1 }, 1],
    ['top-k 2 with softmax-top-k', { topKLora: 2, enableSoftmaxTopk: true }, 1],
  ] as const) {
    test(`real pass = base + Σ_i s_ℓi γ_i g B_i A_i x in every layer (experts merged by hand): ${label}`, async () => {
      const xlora = await build({ layerwiseScalings: true, enableSoftmax: false, ...options });
      const merged = mergedModel((l, c) => g * effective(NAMES.map((_, k) => V(l, k)), options.topKLora ?? null, 'enableSoftmaxTopk' in options)[c]!);
      try {
        xlora.setGlobalScalingWeight(g);
        const [last] = [...xlora.internal_xlora_classifier.layers] as Linear[];
        last!.weight.assign(tf.zerosLike(last!.weight));
        last!.bias!.assign(tf.tensor1d(Array.from({ length: L * C }, (_, u) => V(Math.floor(u / C), u % C))));
        const actual = logitsOf(xlora, IDS);
        const expected = logitsOf(merged, IDS);
        const base = tinyLlama();
        const plain = logitsOf(base, IDS);
        assert.ok(tf.tidy(() => tf.max(tf.abs(tf.sub(expected, plain))).dataSync()[0]!) > 0.05, 'the experts change the output');
        assertAllClose(actual, expected, { atol: 2e-4, rtol: 1e-4 }, label);
        for (const t of [actual, expected, plain]) t.dispose();
        base.dispose();
      } finally {
        xlora.dispose();
        merged.dispose();
      }
    });
  }

  // Experts on lm_head only: its input is the final-norm hidden state h, equal in both passes, so per token
  // logits = W h + Σ_i γ_i g (s'_i B_i A_i h + b_i), s' = top-k(softmax(classifier(h) / T)). As in PEFT, an expert's
  // lora_B bias is added unscaled by s (PEFT multiplies the LoRA input by s; h1 has lora_bias).
  for (const [label, options, g] of [
    ['dense, T 0.8', { softmaxTemperature: 0.8 }, 1],
    ['top-k 2 per token, no renormalisation', { topKLora: 2 }, 1],
    ['top-k 1, g 0.5', { topKLora: 1 }, 0.5],
    ['softmax-top-k 2 per token (no classifier softmax)', { topKLora: 2, enableSoftmaxTopk: true, enableSoftmax: false }, 1],
    ['softmax-top-k 2 after the classifier softmax', { topKLora: 2, enableSoftmaxTopk: true }, 2],
  ] as const) {
    test(`per-token mixing on one layer matches the closed form: ${label}`, async () => {
      const names = ['h1', 'h2', 'h3'];
      const xlora = await build(options, names, 9);
      try {
        xlora.setGlobalScalingWeight(g);
        const actual = logitsOf(xlora, IDS);
        const latest = xlora.getLatestScalings()!;
        const head: Head = { layerwise: false, enableSoftmax: 'enableSoftmax' in options ? options.enableSoftmax : true, temperature: 'softmaxTemperature' in options ? options.softmaxTemperature : 1, numLayers: 1, numExperts: 3 };
        const s = scalingsByHand(xlora, baseH, head);
        // The log/latest scalings are the classifier's, before top-k.
        assertAllClose(latest, s.flat(2), { atol: 1e-5, rtol: 1e-4 }, 'latest scalings (pre-top-k)');
        latest.dispose();
        const base = tinyLlama();
        const wLm = rows(base.lm_head.weight);
        base.dispose();
        const experts = names.map((n, i) => {
          const w = weights.get(n)!;
          const bias = w.get('base_model.model.lm_head.lora_B.bias');
          return {
            a: rows(w.get('base_model.model.lm_head.lora_A.weight')!),
            b: rows(w.get('base_model.model.lm_head.lora_B.weight')!),
            bias: bias ? values(bias) : null,
            gamma: GAMMA[i]!,
          };
        });
        assert.ok(experts[0]!.bias, 'h1 has a lora_B bias');
        const expected = baseH.flatMap((h, n) => {
          const eff = effective(s[n]![0]!, 'topKLora' in options ? options.topKLora : null, 'enableSoftmaxTopk' in options);
          const out = affine(h, wLm);
          experts.forEach(({ a, b, bias, gamma }, i) => {
            const delta = affine(affine(h, a), b);
            delta.forEach((d, v) => (out[v]! += gamma * g * (eff[i]! * d + (bias ? bias[v]! : 0))));
          });
          return out;
        });
        assert.equal(expected.length, 10 * VOCAB);
        assertAllClose(actual, expected, { atol: 2e-4, rtol: 1e-4 }, label);
        actual.dispose();
      } finally {
        xlora.dispose();
      }
    });
  }

  test('embedding experts: the A-lookup is scaled per token, then B, γ and g, as PEFT (merged by hand)', async () => {
    // Expert e1 targets embed_tokens, e2 embed_tokens and q_proj: layers embed_tokens (ℓ 0), q_proj ×2 (ℓ 1, 2).
    const names = ['e1', 'e2'];
    const gammas = [4 / 2, 3 / 3];
    const coef = (l: number, c: number) => [0.7, -0.4, 1.3][l]! * [1, 0.5][c]!;
    const g = 0.8;
    const xlora = await build({ layerwiseScalings: true, enableSoftmax: false }, names);
    const merged = tinyLlama();
    try {
      assert.deepEqual(loraLayers(xlora.inner).map(([p]) => p), ['model.embed_tokens', 'model.layers.0.self_attn.q_proj', 'model.layers.1.self_attn.q_proj']);
      xlora.setGlobalScalingWeight(g);
      const [last] = [...xlora.internal_xlora_classifier.layers] as Linear[];
      last!.weight.assign(tf.zerosLike(last!.weight));
      last!.bias!.assign(tf.tensor1d(Array.from({ length: 3 * 2 }, (_, u) => coef(Math.floor(u / 2), u % 2))));
      ['model.embed_tokens', 'model.layers.0.self_attn.q_proj', 'model.layers.1.self_attn.q_proj'].forEach((path, l) => {
        const target = (merged.getSubmodule(path) as Linear).weight;
        names.forEach((name, c) => {
          const w = weights.get(name)!;
          const embedding = l === 0;
          const a = w.get(`base_model.model.${path}.${embedding ? 'lora_embedding_A' : 'lora_A.weight'}`);
          const b = w.get(`base_model.model.${path}.${embedding ? 'lora_embedding_B' : 'lora_B.weight'}`);
          if (!a || !b) return;
          // Embedding: row v of the table gains (A[:, v] · s) Bᵀ γ g, i.e. (B A)ᵀ; Linear: B A.
          const next = tf.tidy(() => tf.add(target, tf.mul(embedding ? tf.transpose(tf.matMul(b, a)) : tf.matMul(b, a), coef(l, c) * gammas[c]! * g)));
          target.assign(next);
          next.dispose();
        });
      });
      const actual = logitsOf(xlora, IDS);
      const expected = logitsOf(merged, IDS);
      assertAllClose(actual, expected, { atol: 2e-4, rtol: 1e-4 }, 'embedding experts');
      // Not vacuous: the embedding experts alone move the output (only e1 is on embed_tokens only).
      const base = tinyLlama();
      const plain = logitsOf(base, IDS);
      base.dispose();
      assert.ok(tf.tidy(() => tf.max(tf.abs(tf.sub(expected, plain))).dataSync()[0]!) > 0.05);
      for (const t of [actual, expected, plain]) t.dispose();
    } finally {
      xlora.dispose();
      merged.dispose();
    }
  });

  test('stacked expert factors follow weight updates (cached only while the experts are unchanged)', async () => {
    const xlora = await build({ layerwiseScalings: true });
    try {
      const before = logitsOf(xlora, IDS);
      const [, layer] = loraLayers(xlora.inner).find(([, l]) => l.hasAdapter('a') && l.hasAdapter('c'))!;
      const b = layer.lora_B.get('a')!.weight;
      const original = b.clone();
      b.assign(tf.mul(original, 3));
      const changed = logitsOf(xlora, IDS);
      b.assign(original);
      const restored = logitsOf(xlora, IDS);
      assert.ok(tf.tidy(() => tf.max(tf.abs(tf.sub(changed, before))).dataSync()[0]!) > 1e-3, 'an assigned expert weight changes the output');
      assertAllClose(values(restored), values(before), { atol: 0, rtol: 0 }, 'restoring the weight restores the output exactly');
      tf.dispose([before, changed, restored, original]);
    } finally {
      xlora.dispose();
    }
  });

  test('scalingPassValue 0: the scaling pass is the plain base model', async () => {
    const xlora = await build({ layerwiseScalings: true });
    const spy = spyInner(xlora);
    try {
      assert.equal(xlora.getScalingPassValue(), 0);
      logitsOf(xlora, IDS).dispose();
      assert.equal(spy.calls.length, 2, 'one scaling pass and one real pass');
      assertAllClose(spy.scalingPassHidden().flat(), baseH.flat(), { atol: 1e-6, rtol: 0 }, 'scaling-pass hidden state');
    } finally {
      spy.restore();
      xlora.dispose();
    }
  });

  for (const [label, value, g] of [
    ['0.3', 0.3, 1],
    ['0.3 with global weight 0.5', 0.3, 0.5],
    ['null = 1/C', null, 1],
  ] as const) {
    test(`scalingPassValue ${label}: the classifier reads the model with every expert at that value`, async () => {
      const xlora = await build({ layerwiseScalings: true, softmaxTemperature: 0.7 });
      const spy = spyInner(xlora);
      const expectedValue = value ?? 1 / C;
      const merged = mergedModel(() => expectedValue * g);
      try {
        xlora.setScalingPassValue(value);
        xlora.setGlobalScalingWeight(g);
        assert.equal(xlora.getScalingPassValue(), expectedValue);
        logitsOf(xlora, IDS).dispose();
        const h = lastHidden(merged, IDS);
        assertAllClose(spy.scalingPassHidden().flat(), h.flat(), { atol: 2e-5, rtol: 1e-4 }, 'scaling-pass hidden state');
        assert.ok(Math.max(...h.flat().map((x, i) => Math.abs(x - baseH.flat()[i]!))) > 1e-2, 'differs from the base model');
        const latest = xlora.getLatestScalings()!;
        const head: Head = { layerwise: true, enableSoftmax: true, temperature: 0.7, numLayers: L, numExperts: C };
        assertAllClose(latest, scalingsByHand(xlora, h, head).flat(2), { atol: 1e-5, rtol: 1e-4 }, 'scalings');
        latest.dispose();
      } finally {
        spy.restore();
        xlora.dispose();
        merged.dispose();
      }
    });
  }

  test('classifier dropout acts only in training', async () => {
    const xlora = await build({ xloraDepth: 2, xloraSize: 16, xloraDropoutP: 0.5, layerwiseScalings: true });
    try {
      const scalings = () => {
        logitsOf(xlora, IDS).dispose();
        const s = xlora.getLatestScalings()!;
        const v = values(s);
        s.dispose();
        return v;
      };
      xlora.eval();
      const head: Head = { layerwise: true, enableSoftmax: true, temperature: 1, numLayers: L, numExperts: C };
      const byHand = scalingsByHand(xlora, baseH, head).flat(2);
      assertAllClose(scalings(), byHand, { atol: 1e-5, rtol: 1e-4 }, 'eval, first call');
      assertAllClose(scalings(), byHand, { atol: 1e-5, rtol: 1e-4 }, 'eval, second call');
      xlora.train();
      const first = scalings();
      const second = scalings();
      assert.notDeepEqual(first, byHand);
      assert.notDeepEqual(first, second, 'training: a fresh dropout mask per call');
      xlora.eval();
      assertAllClose(scalings(), byHand, { atol: 1e-5, rtol: 1e-4 }, 'eval again');
    } finally {
      xlora.dispose();
    }
  });

  test('a fresh X-LoRA model runs its experts in inference mode (no LoRA dropout)', async () => {
    const spec = { ...EXPERTS.a, loraDropout: 0.5 };
    const dir = join(tmp.dir, 'a-dropout');
    await saveExpert(dir, spec);
    const { result: xlora } = await withWarnings(() => addXLoraToModel({ model: tinyLlama(), xloraConfig: new XLoraConfig({}), adapters: { a: dir, b: dirs['b']! }, seed: 5 }));
    try {
      const first = logitsOf(xlora, IDS);
      const second = logitsOf(xlora, IDS);
      assertAllClose(first, second, { atol: 0, rtol: 0 }, 'two forwards');
      first.dispose();
      second.dispose();
    } finally {
      xlora.dispose();
    }
  });

  test('only the classifier trains: H·O + O (depth 1), H·Z + Z + (d−2)(Z² + Z) + Z·O + O (depth d)', async () => {
    const H = HIDDEN;
    for (const [options, expected] of [
      [{ xloraDepth: 1 }, H * C + C],
      [{ xloraDepth: 1, layerwiseScalings: true }, H * L * C + L * C],
      [{ xloraDepth: 2, xloraSize: 16, layerwiseScalings: true }, H * 16 + 16 + 16 * L * C + L * C],
      [{ xloraDepth: 4, xloraSize: 8 }, H * 8 + 8 + 2 * (8 * 8 + 8) + 8 * C + C],
    ] as const) {
      const xlora = await build(options);
      try {
        const [trainable, all] = xlora.getNbTrainableParameters();
        assert.equal(trainable, expected, JSON.stringify(options));
        const classifierParams = new Set(xlora.internal_xlora_classifier.parameters());
        assert.deepEqual(
          xlora.parameters().filter((p) => p.trainable),
          [...classifierParams],
          'the trainable variables are exactly the classifier\'s',
        );
        const base = tinyLlama();
        // A expert: r (in + out) per targeted module; q_proj 32 -> 32, v_proj 32 -> 16, down_proj 48 -> 32.
        const expertParams = 2 * (4 * (64 + 48) + 2 * 64 + 3 * (48 + 80));
        assert.equal(all, base.numParameters() + expertParams + expected);
        base.dispose();
        xlora.setUseTrainableAdapters(true);
        assert.equal(xlora.getNbTrainableParameters()[0], expected + expertParams, 'trainable adapters');
        for (const [, layer] of loraLayers(xlora.inner)) {
          assert.equal(layer.base_layer.weight.trainable, false);
          for (const name of layer.lora_A.keys()) assert.ok(layer.lora_A.get(name)!.weight.trainable && layer.lora_B.get(name)!.weight.trainable);
        }
        xlora.setUseTrainableAdapters(false);
        assert.equal(xlora.getNbTrainableParameters()[0], expected);
      } finally {
        xlora.dispose();
      }
    }
  });

  test('runtime setters and getters; currentConfig and savePretrained carry them; fromPretrained restores them', async () => {
    const xlora = await build({ layerwiseScalings: true });
    const out = join(tmp.dir, 'saved');
    try {
      assert.deepEqual([xlora.getTopkLora(), xlora.getGlobalScalingWeight(), xlora.getScalingPassValue(), xlora.getUseTrainableAdapters()], [null, 1, 0, false]);
      xlora.setTopkLora(2);
      xlora.setGlobalScalingWeight(0.5);
      xlora.setScalingPassValue(0.25);
      xlora.setUseTrainableAdapters(true);
      assert.deepEqual([xlora.getTopkLora(), xlora.getGlobalScalingWeight(), xlora.getScalingPassValue(), xlora.getUseTrainableAdapters()], [2, 0.5, 0.25, true]);
      const config = xlora.currentConfig();
      assert.deepEqual([config.topKLora, config.globalScalingWeight, config.scalingPassValue, config.useTrainableAdapters, config.hiddenSize], [2, 0.5, 0.25, true, HIDDEN]);
      assert.equal(xlora.config.topKLora, null, 'the loaded config is not mutated');
      await xlora.savePretrained(out);
      const json = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
      assert.deepEqual([json['top_k_lora'], json['global_scaling_weight'], json['scaling_pass_value'], json['use_trainable_adapters'], json['hidden_size']], [2, 0.5, 0.25, true, HIDDEN]);
      assert.deepEqual(json['adapters'], { a: './a', b: './b', c: './c' });
      const reloaded = await fromPretrained(out, tinyLlama());
      try {
        assert.deepEqual([reloaded.getTopkLora(), reloaded.getGlobalScalingWeight(), reloaded.getScalingPassValue(), reloaded.getUseTrainableAdapters()], [2, 0.5, 0.25, true]);
        xlora.eval();
        const a = logitsOf(xlora, IDS);
        const b = logitsOf(reloaded, IDS);
        assertAllClose(b, a, { atol: 1e-6, rtol: 0 }, 'reloaded logits');
        a.dispose();
        b.dispose();
      } finally {
        reloaded.dispose();
      }
      xlora.setTopkLora(null);
      assert.equal(xlora.getTopkLora(), null);
      for (const bad of [0, -1, 1.5, C + 1]) assert.throws(() => xlora.setTopkLora(bad), ConfigError, `setTopkLora(${bad})`);
      assert.equal(xlora.getTopkLora(), null, 'a rejected value leaves the setting');
      xlora.currentConfig();
    } finally {
      xlora.dispose();
    }
  });

  test('getPeftModel with an XLoraConfig builds a working XLoraModel', async () => {
    const xlora = await getPeftModel(tinyLlama(), new XLoraConfig({ adapters: { a: dirs['a']!, b: dirs['b']!, c: dirs['c']! }, layerwiseScalings: true }));
    try {
      assert.ok(xlora instanceof XLoraModel);
      assert.deepEqual(xlora.experts, ['a', 'b', 'c']);
      assert.equal(xlora.numLayers, L);
      assert.equal(xlora.currentConfig().hiddenSize, HIDDEN, 'hidden size read from the model');
      xlora.eval();
      const logits = logitsOf(xlora, IDS);
      assert.deepEqual(logits.shape, [2, 5, VOCAB]);
      logits.dispose();
      const latest = xlora.getLatestScalings()!;
      const head: Head = { layerwise: true, enableSoftmax: true, temperature: 1, numLayers: L, numExperts: C };
      assertAllClose(latest, scalingsByHand(xlora, baseH, head).flat(2), { atol: 1e-5, rtol: 1e-4 }, 'scalings');
      latest.dispose();
    } finally {
      xlora.dispose();
    }
  });

  test('unknown config keys are ignored with one warning', async () => {
    const warnings: string[] = [];
    const config = XLoraConfig.fromJson(
      { peft_type: 'XLORA', hidden_size: HIDDEN, adapters: { a: dirs['a'], b: dirs['b'] }, stop_token_id: 2, some_future_field: [1, 2] },
      { warn: (m: string) => void warnings.push(m) },
    );
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /some_future_field/);
    assert.match(warnings[0]!, /stop_token_id/);
    assert.deepEqual(config.unknownKeys, ['some_future_field', 'stop_token_id']);
    const { result: xlora } = await withWarnings(() => addXLoraToModel({ model: tinyLlama(), xloraConfig: config }));
    assert.deepEqual(xlora.experts, ['a', 'b']);
    xlora.dispose();
  });

  test('typed errors: no adapters, a LoHa expert, a DoRA expert, an invalid top-k; the base model is left unwrapped', async () => {
    const model = tinyLlama();
    try {
      await assert.rejects(addXLoraToModel({ model, xloraConfig: new XLoraConfig({}) }), ConfigError);
      await assert.rejects(getPeftModel(model, new XLoraConfig({})), ConfigError);

      const lohaDir = join(tmp.dir, 'loha');
      const loha = getPeftModel(tinyLlama(), new LoHaConfig({ r: 2, alpha: 4, targetModules: ['q_proj'] }));
      await loha.savePretrained(lohaDir);
      loha.dispose();
      await assert.rejects(addXLoraToModel({ model, xloraConfig: new XLoraConfig({}), adapters: { a: dirs['a']!, loha: lohaDir } }), AdapterLoadError);
      assert.equal(loraLayers(model).length, 0, 'LoHa: the expert loaded first is removed again');

      const doraDir = join(tmp.dir, 'dora');
      await saveExpert(doraDir, { ...EXPERTS.a, useDora: true });
      await assert.rejects(addXLoraToModel({ model, xloraConfig: new XLoraConfig({}), adapters: { a: dirs['a']!, dora: doraDir } }), AdapterLoadError);
      assert.equal(loraLayers(model).length, 0, 'DoRA: the expert loaded first is removed again');

      assert.throws(() => new XLoraConfig({ topKLora: 0 }), ConfigError);
      assert.throws(() => new XLoraConfig({ topKLora: 1.5 }), ConfigError);
      assert.throws(() => new XLoraConfig({ adapters: { a: 'x', b: 'y' }, topKLora: 3 }), ConfigError);
      await assert.rejects(addXLoraToModel({ model, xloraConfig: new XLoraConfig({ topKLora: 3 }), adapters: { a: dirs['a']!, b: dirs['b']! } }), ConfigError);
      assert.equal(loraLayers(model).length, 0, 'top-k: the experts are removed again');

      // The untouched model still computes the base output.
      assertAllClose(lastHidden(model, IDS).flat(), baseH.flat(), { atol: 0, rtol: 0 }, 'base model after failed conversions');
    } finally {
      model.dispose();
    }
  });
});

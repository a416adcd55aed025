// Reverse-direction parity, TS half: adapters created and saved by peft-ts, to be loaded by Python PEFT.
//
//   npx tsx tools/parity/reverse/export.ts <outdir> [case ...]
//
// For each case this loads a fixture base model (test/fixtures/parity/models/), creates a new adapter with peft-ts
// (non-identity init, then every adapter tensor overwritten from a seeded generator so runs are reproducible and the
// adapter is far from an identity), saves it with savePretrained into <outdir>/<case>/, and records peft-ts's outputs
// on the fixture's inputs in <outdir>/<case>/ts_outputs.safetensors plus a case.json that tells check.py what to
// load and compare. tools/parity/reverse/check.sh runs this and then check.py; see tools/parity/README.md.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { setBackend, tf } from '../../../src/engine/index.js';
import { loadSafetensors, saveSafetensors } from '../../../src/io/index.js';
import { AutoModelForCausalLM, AutoModelForSequenceClassification } from '../../../src/models/auto.js';
import { mulberry32 } from '../../../src/nn/index.js';
import type { Module } from '../../../src/nn/index.js';
import { getPeftModel } from '../../../src/peft-model.js';
import type { AdaptableModel, PeftModel } from '../../../src/peft-model.js';
import { LoHaConfig } from '../../../src/tuners/loha/config.js';
import { LoraConfig } from '../../../src/tuners/lora/config.js';
import { addXLoraToModel, XLoraConfig } from '../../../src/tuners/xlora/index.js';
import type { XLoraModel } from '../../../src/tuners/xlora/index.js';
import { TinyConvNet } from '../../../test/tuners/tiny-convnet.js';

const REPO = resolve(import.meta.dirname, '../../..');
const MODELS = join(REPO, 'test/fixtures/parity/models');

type BaseName = 'llama' | 'llama-gqa-llama3rope' | 'gpt2' | 'bert-seqcls' | 'tiny-convnet';
type BaseKind = 'causal_lm' | 'seq_cls' | 'tiny_convnet';

const BASE_KIND: Record<BaseName, BaseKind> = {
  llama: 'causal_lm',
  'llama-gqa-llama3rope': 'causal_lm',
  gpt2: 'causal_lm',
  'bert-seqcls': 'seq_cls',
  'tiny-convnet': 'tiny_convnet',
};

// ---------------------------------------------------------------------------------------------------------------
// seeded values (independent of the TF.js backend)
// ---------------------------------------------------------------------------------------------------------------


/** N(0, std^2) samples (Box-Muller on mulberry32). */
function gaussian(shape: readonly number[], std: number, rng: () => number): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = Math.max(rng(), 1e-12);
    const v = rng();
    const r = Math.sqrt(-2 * Math.log(u)) * std;
    out[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return tf.tensor(out, [...shape], 'float32');
}

/**
 * Overwrites the adapter-owned parameters, much as tools/parity/generate_adapters.py's `reinit_adapter_` does: LoRA/LoHa
 * factors N(0, std^2); DoRA magnitudes ||W row|| * (1 + N(0, 0.2^2)) (Linear weights [out, in]); modules_to_save
 * copies + N(0, 0.2^2); the X-LoRA classifier N(0, 0.2^2). Returns the parameter names touched, in order.
 */
function reinitAdapter(model: Module, seed: number, std: number, only: (name: string) => boolean = () => true): string[] {
  const rng = mulberry32(seed);
  const state = model.stateDict();
  const touched: string[] = [];
  for (const [name, param] of model.namedParameters()) {
    if (!only(name)) continue;
    let value: tf.Tensor | undefined;
    if (name.includes('lora_magnitude_vector')) {
      // peft-ts sets m = ||W + s B A|| from its own (unseeded) initial A and B: start from the base weight's row
      // norms instead, so the value is reproducible (and still not the norm of the adapted weight).
      const base = state[`${name.slice(0, name.indexOf('.lora_magnitude_vector'))}.base_layer.weight`]!;
      value = tf.tidy(() => tf.mul(tf.norm(base, 'euclidean', 1), tf.add(1, gaussian(param.shape, 0.2, rng))));
    } else if (['.lora_A.', '.lora_B.', 'lora_embedding_A', 'lora_embedding_B', '.hada_'].some((s) => name.includes(s))) {
      value = gaussian(param.shape, std, rng);
    } else if (name.includes('.modules_to_save.')) {
      value = tf.tidy(() => tf.add(param, gaussian(param.shape, 0.2, rng)));
    } else if (name.includes('internal_xlora_classifier')) {
      value = gaussian(param.shape, 0.2, rng);
    } else {
      continue;
    }
    param.assign(value);
    value.dispose();
    touched.push(name);
  }
  return touched;
}

// ---------------------------------------------------------------------------------------------------------------
// base models, inputs, forward
// ---------------------------------------------------------------------------------------------------------------

async function loadBase(name: BaseName): Promise<AdaptableModel> {
  const dir = join(MODELS, name);
  const kind = BASE_KIND[name];
  if (kind === 'tiny_convnet') return (await TinyConvNet.fromFixture()) as unknown as AdaptableModel;
  // Repo-relative (the cwd is the repository root, see main), so adapter_config.json's base_model_name_or_path,
  // which savePretrained takes from the path given here, carries no machine path and PEFT's AutoPeftModel* finds it.
  const path = relative(REPO, dir);
  const model = kind === 'seq_cls' ? await AutoModelForSequenceClassification.fromPretrained(path) : await AutoModelForCausalLM.fromPretrained(path);
  return model as unknown as AdaptableModel;
}

type Inputs = Map<string, tf.Tensor>;

/** The fixture's own inputs: the padded batch of the causal/encoder references, `x` for the convnet. */
async function loadInputs(name: BaseName): Promise<Inputs> {
  const ref = await loadSafetensors(join(MODELS, name, 'reference.safetensors'));
  const keep = BASE_KIND[name] === 'tiny_convnet' ? ['x'] : ['input_ids', 'attention_mask', 'token_type_ids'];
  const out: Inputs = new Map();
  for (const [k, v] of ref) {
    if (keep.includes(k)) out.set(k, v);
    else v.dispose();
  }
  return out;
}

function logitsOf(model: { forward(...a: never[]): unknown }, kind: BaseKind, inputs: Inputs): tf.Tensor {
  const fwd = model.forward as unknown as (...a: unknown[]) => unknown;
  if (kind === 'tiny_convnet') return fwd.call(model, inputs.get('x')) as tf.Tensor;
  const args: Record<string, tf.Tensor> = { inputIds: inputs.get('input_ids')!, attentionMask: inputs.get('attention_mask')! };
  if (inputs.has('token_type_ids')) args['tokenTypeIds'] = inputs.get('token_type_ids')!;
  const out = fwd.call(model, args) as Record<string, unknown>;
  for (const [k, v] of Object.entries(out)) {
    if (k === 'logits') continue;
    if (v instanceof tf.Tensor) v.dispose();
    else if (Array.isArray(v)) for (const t of v) if (t instanceof tf.Tensor) t.dispose();
  }
  return out['logits'] as tf.Tensor;
}

function inputsJson(inputs: Inputs): Record<string, unknown> {
  return Object.fromEntries([...inputs].map(([k, v]) => [k, v.arraySync()]));
}

// ---------------------------------------------------------------------------------------------------------------
// cases
// ---------------------------------------------------------------------------------------------------------------

interface Compare {
  /** Key in ts_outputs.safetensors. */
  key: string;
  /** active: the adapters in `adapters` active; merged: merge_and_unload(adapter_names=adapters); disabled: no adapter. */
  what: 'active' | 'merged' | 'disabled';
  adapters?: string[];
}

interface AdapterCase {
  name: string;
  description: string;
  base: BaseName;
  seed: number;
  std: number;
  /** Adapter name -> config; the first is created by getPeftModel, the rest by addAdapter. */
  configs: () => [string, LoraConfig | LoHaConfig][];
  /** Active sets to record (default: the first adapter alone). */
  sets?: string[][];
}

const LLAMA_ALL = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
const lora = (o: ConstructorParameters<typeof LoraConfig>[0]) => new LoraConfig({ r: 4, loraAlpha: 8, loraDropout: 0, initLoraWeights: false, ...o });
const loha = (o: ConstructorParameters<typeof LoHaConfig>[0]) => new LoHaConfig({ r: 4, alpha: 8, rankDropout: 0, moduleDropout: 0, initWeights: false, ...o });

const CASES: AdapterCase[] = [
  {
    name: 'lora-linear',
    description: 'LoRA r 4, alpha 8 on llama q_proj/v_proj (Linear)',
    base: 'llama',
    seed: 7001,
    std: 0.2,
    configs: () => [['default', lora({ taskType: 'CAUSAL_LM', targetModules: ['q_proj', 'v_proj'] })]],
  },
  {
    name: 'lora-embedding',
    description: 'LoRA r 4, alpha 8 on llama embed_tokens (Embedding) and q_proj',
    base: 'llama',
    seed: 7002,
    std: 0.2,
    configs: () => [['default', lora({ taskType: 'CAUSAL_LM', targetModules: ['embed_tokens', 'q_proj'] })]],
  },
  {
    name: 'lora-conv',
    description: 'LoRA r 4, alpha 8 on tiny-convnet Conv1d, Conv2d 3x3, Conv2d 1x1 and Linear; rank_pattern {conv2d: 2}',
    base: 'tiny-convnet',
    seed: 7003,
    std: 0.2,
    configs: () => [['default', lora({ targetModules: ['conv1d', 'conv2d', 'conv2d_1x1', 'linear'], rankPattern: { conv2d: 2 } })]],
  },
  {
    name: 'lora-gpt2-conv1d',
    description: 'LoRA r 4, alpha 8 on GPT-2 Conv1D c_attn/c_proj/c_fc, fan_in_fan_out true',
    base: 'gpt2',
    seed: 7004,
    std: 0.2,
    configs: () => [['default', lora({ taskType: 'CAUSAL_LM', targetModules: ['c_attn', 'c_proj', 'c_fc'], fanInFanOut: true })]],
  },
  {
    name: 'dora-llama',
    description: 'DoRA r 4, alpha 8 on llama q/v/down_proj; magnitudes jittered by (1 + N(0, 0.2^2))',
    base: 'llama',
    seed: 7005,
    std: 0.2,
    configs: () => [['default', lora({ taskType: 'CAUSAL_LM', targetModules: ['q_proj', 'v_proj', 'down_proj'], useDora: true })]],
  },
  {
    name: 'lora-rslora-patterns',
    description:
      'rsLoRA r 4, alpha 8 on all 7 linears of llama-gqa-llama3rope (GQA), rank_pattern {q_proj: 2, model.layers.1.mlp.down_proj: 6}, ' +
      'alpha_pattern {v_proj: 3, model.layers.0.mlp.gate_proj: 16}',
    base: 'llama-gqa-llama3rope',
    seed: 7006,
    std: 0.2,
    configs: () => [
      [
        'default',
        lora({
          taskType: 'CAUSAL_LM',
          targetModules: LLAMA_ALL,
          useRslora: true,
          rankPattern: { q_proj: 2, 'model.layers.1.mlp.down_proj': 6 },
          alphaPattern: { v_proj: 3, 'model.layers.0.mlp.gate_proj': 16 },
        }),
      ],
    ],
  },
  {
    name: 'lora-two-adapters',
    description: "two LoRA adapters on llama: 'default' (r 4, alpha 8, q/v) in the folder, 'other' (r 2, alpha 3, k/o/v/up_proj) in other/",
    base: 'llama',
    seed: 7007,
    std: 0.2,
    configs: () => [
      ['default', lora({ taskType: 'CAUSAL_LM', targetModules: ['q_proj', 'v_proj'] })],
      ['other', lora({ taskType: 'CAUSAL_LM', r: 2, loraAlpha: 3, targetModules: ['k_proj', 'o_proj', 'v_proj', 'up_proj'] })],
    ],
    sets: [['default'], ['other'], ['default', 'other']],
  },
  {
    name: 'lora-bert-seqcls-mts',
    description: 'LoRA r 4, alpha 8 on bert-seqcls query/value, task SEQ_CLS, modules_to_save [classifier] (copy perturbed by N(0, 0.2^2))',
    base: 'bert-seqcls',
    seed: 7008,
    std: 0.2,
    configs: () => [['default', lora({ taskType: 'SEQ_CLS', targetModules: ['query', 'value'], modulesToSave: ['classifier'] })]],
  },
  {
    name: 'loha-linear',
    description: 'LoHa r 4, alpha 8 on llama q/k/v/o, rank_pattern {k_proj: 2}, alpha_pattern {o_proj: 4}; hada_* N(0, 0.35^2)',
    base: 'llama',
    seed: 7009,
    std: 0.35,
    configs: () => [['default', loha({ taskType: 'CAUSAL_LM', targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'], rankPattern: { k_proj: 2 }, alphaPattern: { o_proj: 4 } })]],
  },
  {
    name: 'loha-conv-flat',
    description: 'LoHa r 4, alpha 8 on tiny-convnet Conv1d/Conv2d 3x3/Conv2d 1x1/Linear, use_effective_conv2d false, rank_pattern {conv2d: 2}, alpha_pattern {linear: 3}',
    base: 'tiny-convnet',
    seed: 7010,
    std: 0.35,
    configs: () => [['default', loha({ targetModules: ['conv1d', 'conv2d', 'conv2d_1x1', 'linear'], useEffectiveConv2d: false, rankPattern: { conv2d: 2 }, alphaPattern: { linear: 3 } })]],
  },
  {
    name: 'loha-conv-effective',
    description: 'LoHa r 4, alpha 8 on tiny-convnet, use_effective_conv2d true (Tucker hada_t1/hada_t2 for the k>1 convs)',
    base: 'tiny-convnet',
    seed: 7011,
    std: 0.35,
    configs: () => [['default', loha({ targetModules: ['conv1d', 'conv2d', 'conv2d_1x1', 'linear'], useEffectiveConv2d: true })]],
  },
];

async function writeCase(dir: string, outputs: Map<string, tf.Tensor>, info: Record<string, unknown>): Promise<void> {
  await saveSafetensors(join(dir, 'ts_outputs.safetensors'), outputs, { metadata: { format: 'pt' } });
  writeFileSync(join(dir, 'case.json'), JSON.stringify(info, null, 1) + '\n');
  for (const t of outputs.values()) t.dispose();
}

async function runAdapterCase(c: AdapterCase, outDir: string): Promise<void> {
  const dir = join(outDir, c.name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const kind = BASE_KIND[c.base];
  const inputs = await loadInputs(c.base);
  const configs = c.configs();
  const [first, ...rest] = configs;
  const peft: PeftModel<AdaptableModel> = getPeftModel(await loadBase(c.base), first![1], { adapterName: first![0] });
  for (const [name, config] of rest) peft.addAdapter(name, config);
  const touched = reinitAdapter(peft, c.seed, c.std);
  peft.eval();
  await peft.savePretrained(dir);

  const outputs = new Map<string, tf.Tensor>();
  const compare: Compare[] = [];
  const sets = c.sets ?? [[first![0]]];
  const multi = sets.length > 1;
  for (const set of sets) {
    peft.setAdapter(set);
    const key = multi ? `active.${set.join('+')}.logits` : 'logits';
    outputs.set(key, logitsOf(peft, kind, inputs));
    compare.push({ key, what: 'active', adapters: set });
  }
  peft.setAdapter(sets[0]!);
  outputs.set('disabled.logits', peft.disableAdapter(() => logitsOf(peft, kind, inputs)));
  compare.push({ key: 'disabled.logits', what: 'disabled' });
  for (const set of sets) {
    peft.setAdapter(set);
    peft.mergeAdapter({ adapterNames: set });
    const key = multi ? `merged.${set.join('+')}.logits` : 'merged.logits';
    outputs.set(key, logitsOf(peft, kind, inputs));
    compare.push({ key, what: 'merged', adapters: set });
    peft.unmergeAdapter();
  }
  await writeCase(dir, outputs, {
    name: c.name,
    kind: 'adapter',
    description: c.description,
    peft_type: first![1].peftType,
    base_model: relative(REPO, join(MODELS, c.base)),
    base_kind: kind,
    adapters: Object.fromEntries(configs.map(([n]) => [n, n === 'default' ? '.' : n])),
    seed: c.seed,
    reinitialised_parameters: touched,
    inputs: inputsJson(inputs),
    mask: kind === 'causal_lm' ? 'attention_mask' : null,
    compare,
  });
  peft.dispose();
  for (const t of inputs.values()) t.dispose();
}

// ---------------------------------------------------------------------------------------------------------------
// X-LoRA
// ---------------------------------------------------------------------------------------------------------------

interface XLoraCase {
  name: string;
  description: string;
  experts: string[];
  seed: number;
  options: ConstructorParameters<typeof XLoraConfig>[0];
}

const XLORA_CASES: XLoraCase[] = [
  {
    name: 'xlora-llama',
    description:
      "X-LoRA on llama: experts '0', '1', '2' (LoRA r 4, alpha 8, q_proj/v_proj) made by peft-ts, classifier depth 2 (size 16), " +
      'layerwise scalings, top_k_lora 2, softmax temperature 0.7; XLoraModel.savePretrained',
    experts: ['0', '1', '2'],
    seed: 7104,
    options: { xloraDepth: 2, xloraSize: 16, layerwiseScalings: true, topKLora: 2, softmaxTemperature: 0.7 },
  },
  {
    name: 'xlora-llama-named',
    description: "as xlora-llama but the experts are named 'alpha', 'beta', 'gamma' (PEFT names its experts '0'..'C-1')",
    experts: ['alpha', 'beta', 'gamma'],
    seed: 7200,
    options: { xloraDepth: 2, xloraSize: 16, layerwiseScalings: true, topKLora: 2, softmaxTemperature: 0.7 },
  },
  {
    name: 'xlora-llama-p0',
    description:
      "as xlora-llama (experts '0'..'2') with xlora_dropout_p 0 and the config's default classifier layout ('original': " +
      'ReLU + Dropout(0) modules, so the last Linear is layers.3; PEFT builds no Dropout for p 0 and expects layers.2)',
    experts: ['0', '1', '2'],
    seed: 7301,
    options: { xloraDepth: 2, xloraSize: 16, layerwiseScalings: true, topKLora: 2, softmaxTemperature: 0.7, xloraDropoutP: 0 },
  },
  {
    name: 'xlora-llama-p0-peft-layout',
    description: "as xlora-llama-p0 but built with classifierLayout 'peft' (PEFT's module indices: last Linear layers.2)",
    experts: ['0', '1', '2'],
    seed: 7301,
    options: { xloraDepth: 2, xloraSize: 16, layerwiseScalings: true, topKLora: 2, softmaxTemperature: 0.7, xloraDropoutP: 0, classifierLayout: 'peft' },
  },
];

async function runXLoraCase(c: XLoraCase, outDir: string): Promise<void> {
  const dir = join(outDir, c.name);
  const src = join(outDir, `_${c.name}-experts`);
  for (const d of [dir, src]) {
    rmSync(d, { recursive: true, force: true });
    mkdirSync(d, { recursive: true });
  }
  const inputs = await loadInputs('llama');
  // 1. the experts: plain peft-ts LoRA adapters, saved outside the X-LoRA folder
  const adapters: Record<string, string> = {};
  for (const [i, expert] of c.experts.entries()) {
    const peft = getPeftModel(await loadBase('llama'), lora({ taskType: 'CAUSAL_LM', targetModules: ['q_proj', 'v_proj'] }));
    reinitAdapter(peft, c.seed + 10 + i, 0.2);
    await peft.savePretrained(join(src, expert));
    peft.dispose();
    adapters[expert] = join(src, expert);
  }
  // 2. X-LoRA over them; classifier re-drawn N(0, 0.2^2) so the top-k choice is not a near tie
  const base = await loadBase('llama');
  const config = new XLoraConfig({ taskType: 'CAUSAL_LM', hiddenSize: 64, adapters, ...c.options });
  const xlora: XLoraModel = await addXLoraToModel({ model: base as never, xloraConfig: config, seed: c.seed });
  const touched = reinitAdapter(xlora, c.seed + 200, 0.2, (n) => n.startsWith('internal_xlora_classifier.'));
  xlora.eval();
  await xlora.savePretrained(dir);
  rmSync(src, { recursive: true, force: true });

  const out = xlora.forward({ inputIds: inputs.get('input_ids')!, attentionMask: inputs.get('attention_mask')! });
  out.loss?.dispose();
  const scalings = xlora.getLatestScalings()!;
  // smallest gap between the k-th and (k+1)-th scaling at real tokens (where the k-th is not negligible)
  const k = c.options?.topKLora ?? null;
  let topkMinGap: number | null = null;
  if (k !== null && k < c.experts.length) {
    const s = scalings.arraySync();
    const mask = inputs.get('attention_mask')!.arraySync() as number[][];
    s.forEach((row, b) =>
      row.forEach((tok, t) => {
        if (!mask[b]![t]) return;
        for (const layer of tok) {
          const sorted = [...layer].sort((x, y) => y - x);
          if (sorted[k - 1]! <= 1e-3) continue;
          const gap = sorted[k - 1]! - sorted[k]!;
          topkMinGap = topkMinGap === null ? gap : Math.min(topkMinGap, gap);
        }
      }),
    );
  }
  const outputs = new Map<string, tf.Tensor>([
    ['logits', out.logits],
    ['scalings', scalings],
  ]);
  await writeCase(dir, outputs, {
    name: c.name,
    kind: 'xlora',
    description: c.description,
    peft_type: 'XLORA',
    base_model: relative(REPO, join(MODELS, 'llama')),
    base_kind: 'causal_lm',
    experts: c.experts,
    seed: c.seed,
    reinitialised_parameters: touched,
    topk_min_gap: topkMinGap,
    inputs: inputsJson(inputs),
    mask: 'attention_mask',
    compare: [
      { key: 'logits', what: 'active' },
      { key: 'scalings', what: 'scalings' },
    ],
  });
  xlora.dispose();
  for (const t of inputs.values()) t.dispose();
}

// ---------------------------------------------------------------------------------------------------------------

async function main(argv: string[]): Promise<number> {
  const [outArg, ...only] = argv;
  if (!outArg) {
    console.error('usage: npx tsx tools/parity/reverse/export.ts <outdir> [case ...]');
    return 2;
  }
  const outDir = resolve(outArg);
  mkdirSync(outDir, { recursive: true });
  process.chdir(REPO);
  const backend = await setBackend();
  const want = (name: string) => only.length === 0 || only.includes(name);
  const names: string[] = [];
  for (const c of CASES) {
    if (!want(c.name)) continue;
    console.log(`== ${c.name}`);
    await runAdapterCase(c, outDir);
    names.push(c.name);
  }
  for (const c of XLORA_CASES) {
    if (!want(c.name)) continue;
    console.log(`== ${c.name}`);
    await runXLoraCase(c, outDir);
    names.push(c.name);
  }
  writeFileSync(join(outDir, 'cases.json'), JSON.stringify({ backend, cases: names }, null, 1) + '\n');
  console.log(`wrote ${names.length} cases to ${outDir} (TF.js backend ${backend})`);
  return 0;
}

process.exitCode = await main(process.argv.slice(2));

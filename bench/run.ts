// `npm run bench`: speed and peak memory of peft-ts next to PyTorch (+ transformers + PEFT), one Markdown table per
// section. Every configuration runs in its own child process (bench/worker.ts for ours, tools/parity/bench_torch.py
// in tools/parity/.venv for PyTorch), so each peak RSS is that configuration's own. Ours uses the engine's default
// backend (onnxruntime in Node; the summary section runs each of --backends, the gpt2 section --gpt2-backends),
// PyTorch the CPU with the same number of threads.
//
// Sections (default: all but profile):
//   summary  forward, LoRA / LoHa training step and X-LoRA generation on each of --backends vs PyTorch, peak memory
//   gpt2     GPT-2-small shape (12 layers, 768 wide, vocab 50257), random weights: forward and generate tokens/s
//   llama    Llama shape (~30M parameters): eval forward and full training step (all weights, Adam) tokens/s
//   lora     LoRA r 8 on q_proj, v_proj: forward and training step; loading a folder of 64 adapters, switching
//   loha     LoHa r 8 vs LoRA r 16 (same trainable budget) on q_proj, v_proj: training step
//   xlora    X-LoRA generation, 4 LoRA experts, depth-1 layerwise classifier: cached, uncached, PyTorch
//   profile  where our training step spends its time (tf.profile, per kernel); not in the default run
//
// Usage: npm run bench [-- --section summary,llama] [--backends onnxruntime,wasm] [--reps 3] [--threads 2] [--no-torch] [--quick]
//        [--vocab 8192 --hidden 512 --layers 8 --heads 8 --intermediate 1408 --seq 256 --batch 4]
//        [--gpt2-seq 128 --gpt2-new 32 --gpt2-cpu-seq 32 --gpt2-cpu-new 8 --gpt2-backends onnxruntime,wasm,cpu]
//        [--adapters 64] [--loha-targets q_proj,v_proj|all --loha-batch 4] [--xlora-new 256 --xlora-uncached-new 32 --xlora-prompt 64]
//        [--max-load 1.5 --wait 300] [--verbose]
// PyTorch runs when tools/parity/.venv exists (tools/parity/setup.sh); PEFT_TS_BENCH_PYTHON names another python.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { failures, fmt, loadAverage, num, printTable, ratio, runOurs, runTorch, torchAvailable, torchPython } from './common.js';
import type { ChildResult } from './common.js';
import type { AdapterSpec, LlamaShape } from './llama-cases.js';

const allSections = ['summary', 'gpt2', 'llama', 'lora', 'loha', 'xlora'] as const;
const optionalSections = ['profile'] as const;
type Section = (typeof allSections)[number] | (typeof optionalSections)[number];

const options = {
  section: { type: 'string', default: allSections.join(',') },
  backends: { type: 'string', default: 'onnxruntime,wasm' },
  reps: { type: 'string', default: '3' },
  threads: { type: 'string', default: '2' },
  'no-torch': { type: 'boolean', default: false },
  quick: { type: 'boolean', default: false },
  verbose: { type: 'boolean', default: false },
  vocab: { type: 'string' },
  hidden: { type: 'string' },
  layers: { type: 'string' },
  heads: { type: 'string' },
  intermediate: { type: 'string' },
  seq: { type: 'string' },
  batch: { type: 'string' },
  'gpt2-layers': { type: 'string' },
  'gpt2-seq': { type: 'string' },
  'gpt2-new': { type: 'string' },
  'gpt2-cpu-seq': { type: 'string' },
  'gpt2-cpu-new': { type: 'string' },
  'gpt2-backends': { type: 'string', default: 'onnxruntime,wasm,cpu' },
  adapters: { type: 'string' },
  'loha-targets': { type: 'string', default: 'q_proj,v_proj' },
  'loha-batch': { type: 'string' },
  'xlora-prompt': { type: 'string' },
  'xlora-new': { type: 'string' },
  'xlora-uncached-new': { type: 'string' },
  'max-load': { type: 'string' },
  wait: { type: 'string', default: '300' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof options }>>['values'];

interface Settings {
  reps: number;
  threads: number;
  /** Our backends for the summary section (the other sections use the engine's default). */
  backends: string[];
  torch: boolean;
  verbose: boolean;
  shape: LlamaShape;
  gpt2: { layers: number; seq: number; newTokens: number; cpuSeq: number; cpuNew: number; backends: string[] };
  adapters: number;
  loha: { targets: string[]; batch: number };
  xlora: { prompt: number; newTokens: number; uncachedNew: number };
}

function settingsFrom(v: Values): Settings {
  const q = v.quick;
  const n = (value: string | undefined, full: number, quick: number) => (value === undefined ? (q ? quick : full) : Number(value));
  return {
    reps: Number(v.reps),
    threads: Number(v.threads),
    backends: v.backends.split(',').filter(Boolean),
    torch: !v['no-torch'],
    verbose: v.verbose,
    shape: {
      // 8 layers x (4 x 512^2 attention + 3 x 512 x 1408 MLP) = 25.7M, + 2 x 8192 x 512 untied embeddings = 34.2M.
      vocab: n(v.vocab, 8192, 1024),
      hidden: n(v.hidden, 512, 128),
      layers: n(v.layers, 8, 2),
      heads: n(v.heads, 8, 4),
      intermediate: n(v.intermediate, 1408, 352),
      seq: n(v.seq, 256, 64),
      batch: n(v.batch, 4, 2),
    },
    gpt2: {
      layers: n(v['gpt2-layers'], 12, 2),
      seq: n(v['gpt2-seq'], 128, 32),
      newTokens: n(v['gpt2-new'], 32, 8),
      cpuSeq: n(v['gpt2-cpu-seq'], 32, 16),
      cpuNew: n(v['gpt2-cpu-new'], 8, 4),
      backends: v['gpt2-backends'].split(',').filter(Boolean),
    },
    adapters: n(v.adapters, 64, 8),
    loha: {
      targets: v['loha-targets'] === 'all' ? allLinear : v['loha-targets'].split(',').filter(Boolean),
      batch: n(v['loha-batch'], n(v.batch, 4, 2), n(v.batch, 4, 2)),
    },
    xlora: { prompt: n(v['xlora-prompt'], 64, 16), newTokens: n(v['xlora-new'], 256, 16), uncachedNew: n(v['xlora-uncached-new'], 32, 8) },
  };
}

/** Parameter count of the Llama shape (no biases, untied embeddings), e.g. "29.9M". */
function paramsM(s: LlamaShape): string {
  const perLayer = 4 * s.hidden * s.hidden + 3 * s.hidden * s.intermediate + 2 * s.hidden;
  return `${((s.layers * perLayer + 2 * s.vocab * s.hidden + s.hidden) / 1e6).toFixed(1)}M`;
}

function shapeLine(s: LlamaShape): string {
  return (
    `Llama shape: ${s.layers} layers, hidden ${s.hidden}, ${s.heads} heads, intermediate ${s.intermediate}, vocab ${s.vocab} ` +
    `(untied embeddings; ${paramsM(s)} parameters), batch ${s.batch} x seq ${s.seq} = ${s.batch * s.seq} tokens per step`
  );
}

class Runner {
  /** Versions reported by the first PyTorch child that succeeded. */
  torchVersions: string | undefined;

  constructor(readonly s: Settings) {}

  ours(caseName: string, args: object, timeoutS = 600, backend?: string): Promise<ChildResult> {
    if (this.s.verbose) console.error(`[bench] ours ${backend ?? ''} ${caseName} ${JSON.stringify(args).slice(0, 200)}`);
    return runOurs(caseName, args, { threads: this.s.threads, timeoutS, verbose: this.s.verbose, backend }).then((r) => this.log(`ours ${caseName}`, r));
  }

  async torch(section: string, args: object, timeoutS = 600): Promise<ChildResult | undefined> {
    if (!this.s.torch) return undefined;
    if (this.s.verbose) console.error(`[bench] torch ${section} ${JSON.stringify(args).slice(0, 200)}`);
    const r = await runTorch(section, args, { threads: this.s.threads, timeoutS, verbose: this.s.verbose });
    if (r?.ok && !this.torchVersions) this.torchVersions = `torch ${String(r.data['torch'])}, transformers ${String(r.data['transformers'])}, peft ${String(r.data['peft'])}`;
    return r ? this.log(`torch ${section}`, r) : r;
  }

  private log(what: string, r: ChildResult): ChildResult {
    if (this.s.verbose) console.error(`[bench] ${what}: ${r.ok ? 'ok' : r.error} (${r.wallS.toFixed(1)} s)`);
    return r;
  }

  /** The PyTorch column's placeholder when it was not run. */
  get torchMissing(): string {
    return !this.s.torch ? 'not run (--no-torch)' : torchAvailable() ? 'failed' : `not installed (${torchPython} missing)`;
  }
}

function rss(r: ChildResult | undefined): string {
  return fmt(num(r, 'peakRssMb'), 0);
}

// ---------------------------------------------------------------------------------------------------------------
// Sections
// ---------------------------------------------------------------------------------------------------------------

async function sectionGpt2(run: Runner): Promise<void> {
  const g = run.s.gpt2;
  const rows: Record<string, string>[] = [];
  const results: Record<string, ChildResult | undefined> = {};
  const notes: string[] = [];
  for (const backend of g.backends) {
    const slow = backend === 'cpu';
    const args = { backend, layers: g.layers, seq: slow ? g.cpuSeq : g.seq, prompt: 16, newTokens: slow ? g.cpuNew : g.newTokens, reps: slow ? 1 : run.s.reps };
    const r = (results[`ours ${backend}`] = await run.ours('gpt2', args));
    rows.push({ implementation: `peft-ts ${backend}`, 'forward seq': String(args.seq), 'forward tokens/s': fmt(num(r, 'forwardTokensPerSecond')), 'generate tokens': `16 + ${args.newTokens}`, 'generate tokens/s': fmt(num(r, 'generateTokensPerSecond'), 2), 'peak RSS MB': rss(r) });
    if (slow) notes.push(`cpu backend (TF.js's plain-JS kernels) is slow: forward seq ${args.seq} and ${args.newTokens} new tokens, 1 repetition (wasm: seq ${g.seq}, ${g.newTokens} new tokens, median of ${run.s.reps}).`);
  }
  const targs = { layers: g.layers, seq: g.seq, prompt: 16, newTokens: g.newTokens, reps: run.s.reps };
  const t = (results['torch'] = await run.torch('gpt2', targs));
  rows.push({ implementation: `PyTorch ${run.s.threads} threads`, 'forward seq': String(g.seq), 'forward tokens/s': t ? fmt(num(t, 'forwardTokensPerSecond')) : run.torchMissing, 'generate tokens': `16 + ${g.newTokens}`, 'generate tokens/s': fmt(num(t, 'generateTokensPerSecond'), 2), 'peak RSS MB': rss(t) });
  for (const backend of g.backends.filter((b) => b !== 'cpu')) {
    const r = results[`ours ${backend}`];
    if (r?.ok && t?.ok) notes.push(`${backend} / PyTorch: forward ${ratio(num(r, 'forwardTokensPerSecond'), num(t, 'forwardTokensPerSecond'))}, generate ${ratio(num(r, 'generateTokensPerSecond'), num(t, 'generateTokensPerSecond'))}.`);
  }
  printTable(`1. GPT-2 small shape (${g.layers} layers, 768 wide, vocab 50257, random weights), batch 1, greedy generate with KV cache`, rows, [...notes, ...failures(results)]);
}

const loraQV: AdapterSpec = { type: 'lora', r: 8, alpha: 16, targets: ['q_proj', 'v_proj'] };
const lohaQV: AdapterSpec = { type: 'loha', r: 8, alpha: 8, targets: ['q_proj', 'v_proj'] };

/**
 * The headline numbers (issue #8): forward, LoRA and LoHa training steps and X-LoRA generation of the Llama-shaped
 * model, each of our backends against PyTorch + PEFT in the same run, and the peak memory of a training step.
 */
async function sectionSummary(run: Runner): Promise<void> {
  const shape = run.s.shape;
  const x = run.s.xlora;
  const results: Record<string, ChildResult | undefined> = {};
  const dir = mkdtempSync(join(tmpdir(), 'peft-ts-bench-summary-'));
  const experts = ['0', '1', '2', '3'];
  const measures = [
    { key: 'forward', label: 'eval forward (no adapter)', case: 'llama', args: { shape, adapter: null, mode: 'forward', reps: run.s.reps, warmup: 1 }, unit: 'tokensPerSecond' },
    // Training is measured in steady state: both sides get three warm-up steps (ours fills its buffer pool and
    // ONNX Runtime its arenas over the first two or three).
    { key: 'lora', label: 'LoRA r 8 q/v training step', case: 'llama', args: { shape, adapter: loraQV, mode: 'train', reps: run.s.reps, warmup: 3 }, unit: 'tokensPerSecond' },
    { key: 'loha', label: 'LoHa r 8 q/v training step', case: 'llama', args: { shape, adapter: lohaQV, mode: 'train', reps: run.s.reps, warmup: 3 }, unit: 'tokensPerSecond' },
    {
      key: 'xlora',
      label: `X-LoRA generation (4 experts, prompt ${x.prompt}, ${x.newTokens} new)`,
      case: 'xlora-generate',
      // Ours: the median of three generations; PyTorch's (uncached, about a minute) runs once.
      args: { shape, dir, experts, depth: 1, layerwise: true, prompt: x.prompt, newTokens: x.newTokens, useCache: true, reps: 3 },
      unit: 'tokensPerSecond',
    },
  ] as const;
  try {
    results['create experts'] = await run.ours('adapters-create', { shape, dir, names: experts, adapter: loraQV });
    const rows: Record<string, string>[] = [];
    for (const m of measures) {
      // PyTorch + PEFT's X-LoRA cannot use a KV cache (forced use_cache=False), so its run is one repetition.
      const torch = (results[`torch ${m.key}`] = await run.torch(m.case, m.key === 'xlora' ? { ...m.args, useCache: false, reps: 1 } : m.args, 900));
      const row: Record<string, string> = { measure: m.label, 'PyTorch tokens/s': torch ? fmt(num(torch, m.unit)) : run.torchMissing };
      for (const backend of run.s.backends) {
        const ours = (results[`${backend} ${m.key}`] = await run.ours(m.case, m.args, 900, backend));
        row[`${backend} tokens/s`] = fmt(num(ours, m.unit));
        row[`${backend} / PyTorch`] = ratio(num(ours, m.unit), num(torch, m.unit));
      }
      rows.push(row);
    }
    const memory: Record<string, string> = { measure: 'peak RSS of the LoRA training-step process, MB', 'PyTorch tokens/s': rss(results['torch lora']) };
    for (const backend of run.s.backends) {
      memory[`${backend} tokens/s`] = rss(results[`${backend} lora`]);
      memory[`${backend} / PyTorch`] = ratio(num(results[`${backend} lora`], 'peakRssMb'), num(results['torch lora'], 'peakRssMb'));
    }
    rows.push(memory);
    printTable(`0. Summary: peft-ts backends vs PyTorch + PEFT on the Llama-shaped model (${paramsM(shape)})`, rows, [
      ...commonNotes(run).map((n) =>
        n.replace(/peft-ts on wasm \(\d+ threads\)/, `peft-ts on ${run.s.backends.join(' and ')} (${run.s.threads} threads each)`).replace('after 1 warm-up', 'after 1 warm-up (training steps: 3)'),
      ),
      'ours / PyTorch above 1.00x: ours faster (tokens/s); in the memory row above 1.00x: ours uses more.',
      `X-LoRA: ours with its dual KV cache; PyTorch + PEFT 0.21 forces use_cache=False for X-LoRA, so every new token reruns both passes over the whole sequence.`,
      ...failures(results),
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Forward + training rows for one adapter setting, ours vs PyTorch. */
async function forwardTrainRows(run: Runner, label: string, adapter: AdapterSpec | null, results: Record<string, ChildResult | undefined>): Promise<Record<string, string>[]> {
  const rows: Record<string, string>[] = [];
  const shape = run.s.shape;
  for (const mode of ['forward', 'train'] as const) {
    const args = { shape, adapter, mode, reps: run.s.reps, warmup: 1 };
    const ours = (results[`ours ${label} ${mode}`] = await run.ours('llama', args));
    const torch = (results[`torch ${label} ${mode}`] = await run.torch('llama', args));
    const what = mode === 'forward' ? 'eval forward' : adapter ? 'training step (adapter only, Adam)' : 'training step (all weights, Adam)';
    rows.push({
      model: label,
      measure: what,
      'trainable params': fmt(num(ours, 'trainable') ?? num(torch, 'trainable'), 0),
      'peft-ts ms': fmt(num(ours, 'ms'), 0),
      'peft-ts tokens/s': fmt(num(ours, 'tokensPerSecond')),
      'PyTorch ms': torch ? fmt(num(torch, 'ms'), 0) : run.torchMissing,
      'PyTorch tokens/s': fmt(num(torch, 'tokensPerSecond')),
      'ours/theirs (tokens/s)': ratio(num(ours, 'tokensPerSecond'), num(torch, 'tokensPerSecond')),
      'peft-ts peak RSS MB': rss(ours),
      'PyTorch peak RSS MB': rss(torch),
    });
  }
  return rows;
}

function commonNotes(run: Runner): string[] {
  return [
    shapeLine(run.s.shape),
    `medians of ${run.s.reps} repetitions after 1 warm-up; peft-ts on wasm (${run.s.threads} threads), PyTorch ${run.s.threads} threads (float32, default sdpa attention); ` +
      'training step = forward with labels (causal-LM loss) + backward + optimizer step (peft-ts tf.train.adam via tf.variableGrads, PyTorch AdamW).',
  ];
}

async function sectionLlama(run: Runner): Promise<void> {
  const results: Record<string, ChildResult | undefined> = {};
  const rows = await forwardTrainRows(run, `Llama ${paramsM(run.s.shape)}`, null, results);
  printTable('2. Llama-shaped model, no adapter: eval forward and LoRA-free training step', rows, [...commonNotes(run), ...failures(results)]);
}

async function sectionLora(run: Runner): Promise<void> {
  const results: Record<string, ChildResult | undefined> = {};
  const rows = await forwardTrainRows(run, 'LoRA r 8 q/v', loraQV, results);
  printTable('3a. LoRA (r 8, alpha 16, q_proj + v_proj) on the Llama-shaped model', rows, [...commonNotes(run), ...failures(results)]);

  const dir = mkdtempSync(join(tmpdir(), 'peft-ts-bench-adapters-'));
  const aresults: Record<string, ChildResult | undefined> = {};
  try {
    const names = Array.from({ length: run.s.adapters }, (_, i) => `a${i}`);
    const created = (aresults['create'] = await run.ours('adapters-create', { shape: run.s.shape, dir, names, adapter: loraQV }));
    const switches = 1000;
    const args = { shape: run.s.shape, dir, names, switches };
    const ours = created.ok ? (aresults['ours load'] = await run.ours('adapters', args)) : undefined;
    const torch = created.ok ? (aresults['torch load'] = await run.torch('adapters', args)) : undefined;
    const row = (impl: string, r: ChildResult | undefined, missing?: string) => ({
      implementation: impl,
      'fromPretrained ms (first)': missing ?? fmt(num(r, 'fromPretrainedMs')),
      'loadAdapter ms (median of rest)': fmt(num(r, 'loadAdapterMedianMs'), 2),
      'loadAdapter ms (last)': fmt(num(r, 'loadAdapterLastMs'), 2),
      'ms per adapter (all)': fmt(num(r, 'msPerAdapter'), 2),
      'setAdapter ms (median)': fmt(num(r, 'switchMedianMs'), 3),
      'setAdapter ms (mean)': fmt(num(r, 'switchMeanMs'), 3),
      'peak RSS MB': rss(r),
    });
    printTable(
      `3b. Loading ${names.length} LoRA adapters (r 8, q/v; ${fmt(num(created, 'count'), 0)} folders of adapter_model.safetensors + adapter_config.json, saved by peft-ts savePretrained)`,
      [row('peft-ts', ours), row('PyTorch + PEFT', torch, torch ? undefined : run.torchMissing)],
      [
        `PeftModel.fromPretrained of the first, then ${names.length - 1} loadAdapter calls, timed one by one; then ${switches} setAdapter calls to adapters in a fixed scattered order.`,
        `ms per adapter = (fromPretrained + all loadAdapter) / ${names.length}. ms per adapter ours/theirs (above 1: ours slower): ${ratio(num(ours, 'msPerAdapter'), num(torch, 'msPerAdapter'))}.`,
        ...failures(aresults),
      ],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const allLinear = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

async function sectionLoha(run: Runner): Promise<void> {
  const results: Record<string, ChildResult | undefined> = {};
  const { targets, batch } = run.s.loha;
  const shape = { ...run.s.shape, batch };
  const r = 8;
  const rows: Record<string, string>[] = [];
  for (const adapter of [
    { type: 'loha', r, alpha: r, targets },
    { type: 'lora', r: 2 * r, alpha: 2 * r, targets },
  ] satisfies AdapterSpec[]) {
    const args = { shape, adapter, mode: 'train', reps: run.s.reps, warmup: 1 };
    const label = `${adapter.type === 'loha' ? 'LoHa' : 'LoRA'} r ${adapter.r}`;
    // A step that needs more than the 4 GB wasm heap does not fail, it stalls: bound the wait.
    const ours = (results[`ours ${label}`] = await run.ours('llama', args, 300));
    const torch = (results[`torch ${label}`] = await run.torch('llama', args, 300));
    rows.push({
      method: label,
      'trainable params': fmt(num(ours, 'trainable') ?? num(torch, 'trainable'), 0),
      'peft-ts step ms': fmt(num(ours, 'ms'), 0),
      'peft-ts tokens/s': fmt(num(ours, 'tokensPerSecond')),
      'PyTorch step ms': torch ? fmt(num(torch, 'ms'), 0) : run.torchMissing,
      'PyTorch tokens/s': fmt(num(torch, 'tokensPerSecond')),
      'ours/theirs (tokens/s)': ratio(num(ours, 'tokensPerSecond'), num(torch, 'tokensPerSecond')),
      'peft-ts peak RSS MB': rss(ours),
      'PyTorch peak RSS MB': rss(torch),
    });
  }
  const lohaOurs = num(results[`ours LoHa r ${r}`], 'ms');
  const loraOurs = num(results[`ours LoRA r ${2 * r}`], 'ms');
  const lohaTorch = num(results[`torch LoHa r ${r}`], 'ms');
  const loraTorch = num(results[`torch LoRA r ${2 * r}`], 'ms');
  printTable('4. LoHa vs LoRA at equal trainable-parameter budget (training step)', rows, [
    ...commonNotes(run).map((n) => n.replace(/batch \d+ x/, `batch ${batch} x`).replace(/= \d+ tokens/, `= ${batch * shape.seq} tokens`)),
    `adapters on ${targets.join(', ')}; LoHa r ${r} has 2r(in + out) parameters per layer, the same as LoRA r ${2 * r}. LoHa rebuilds each dense ΔW (out x in) on every forward and applies it as a second full-width matmul, LoRA multiplies activations by its thin factors only.`,
    `LoHa step / LoRA step: peft-ts ${ratio(lohaOurs, loraOurs)}, PyTorch ${ratio(lohaTorch, loraTorch)}.`,
    ...(targets.length === allLinear.length && batch >= 4
      ? []
      : [`all seven linear layers at batch 4 x seq 256 (--loha-targets all --loha-batch 4) need more than wasm's 4 GB heap for one peft-ts training step, which then stalls (no error) — hence ${targets.length === allLinear.length ? `batch ${batch}` : 'q_proj/v_proj, as section 3'}.`]),
    ...failures(results),
  ]);
}

async function sectionXLora(run: Runner): Promise<void> {
  const x = run.s.xlora;
  const dir = mkdtempSync(join(tmpdir(), 'peft-ts-bench-xlora-'));
  const results: Record<string, ChildResult | undefined> = {};
  const experts = ['0', '1', '2', '3'];
  try {
    results['create experts'] = await run.ours('adapters-create', { shape: run.s.shape, dir, names: experts, adapter: loraQV });
    const base = { shape: run.s.shape, dir, experts, depth: 1, layerwise: true, prompt: x.prompt };
    const uncachedReps = Math.min(run.s.reps, 2);
    const cached = (results['ours cached'] = await run.ours('xlora-generate', { ...base, newTokens: x.newTokens, useCache: true, reps: run.s.reps }));
    const uncached = (results['ours uncached'] = await run.ours('xlora-generate', { ...base, newTokens: x.uncachedNew, useCache: false, reps: uncachedReps }));
    const torchLong = (results['torch long'] = await run.torch('xlora-generate', { ...base, newTokens: x.newTokens, reps: 1 }));
    const torchShort = x.uncachedNew === x.newTokens ? torchLong : (results['torch short'] = await run.torch('xlora-generate', { ...base, newTokens: x.uncachedNew, reps: uncachedReps }));
    const torchTps = (r: ChildResult | undefined) => num(r, 'tokensPerSecond');
    const rows = [
      { implementation: 'peft-ts, cached (dual KV cache)', 'new tokens': String(x.newTokens), reps: String(run.s.reps), 'tokens/s': fmt(torchTps(cached), 2), 'vs PyTorch (same length)': ratio(torchTps(cached), torchTps(torchLong)), 'peak RSS MB': rss(cached) },
      { implementation: 'peft-ts, uncached (useCache: false)', 'new tokens': String(x.uncachedNew), reps: String(uncachedReps), 'tokens/s': fmt(torchTps(uncached), 2), 'vs PyTorch (same length)': ratio(torchTps(uncached), torchTps(torchShort)), 'peak RSS MB': rss(uncached) },
      { implementation: 'PyTorch + PEFT (use_cache=False, forced)', 'new tokens': String(x.newTokens), reps: '1', 'tokens/s': torchLong ? fmt(torchTps(torchLong), 2) : run.torchMissing, 'vs PyTorch (same length)': '1.00x', 'peak RSS MB': rss(torchLong) },
    ];
    if (torchShort !== torchLong) {
      rows.push({ implementation: 'PyTorch + PEFT (use_cache=False, forced)', 'new tokens': String(x.uncachedNew), reps: String(uncachedReps), 'tokens/s': torchShort ? fmt(torchTps(torchShort), 2) : run.torchMissing, 'vs PyTorch (same length)': '1.00x', 'peak RSS MB': rss(torchShort) });
    }
    printTable(`5. X-LoRA generation: 4 LoRA experts (r 8, q/v), depth-1 layerwise classifier, prompt ${x.prompt}, batch 1, greedy`, rows, [
      shapeLine({ ...run.s.shape, batch: 1, seq: x.prompt }).replace(/, batch .*$/, ''),
      `tokens/s = new tokens / wall time of one generate call (prompt included), median of the reps after a 4-token warm-up.`,
      `uncached columns measure ${x.uncachedNew} new tokens, not ${x.newTokens}: every step reruns both passes over the whole sequence, so tokens/s falls as it grows; nothing is extrapolated. Cached vs PyTorch at ${x.uncachedNew}: ${ratio(torchTps(cached), torchTps(torchShort))} (different lengths).`,
      `experts saved once by peft-ts savePretrained (PEFT format) into a temp folder; PyTorch loads the same folders.`,
      ...failures(results),
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function sectionProfile(run: Runner): Promise<void> {
  const results: Record<string, ChildResult | undefined> = {};
  for (const [label, adapter] of [['all weights', null], ['LoRA r 8 q/v', loraQV]] as const) {
    const r = (results[label] = await run.ours('profile', { shape: run.s.shape, adapter, mode: 'train', reps: 1 }));
    if (!r.ok) continue;
    const kernels = JSON.parse(String(r.data['kernels'])) as [string, number, number][];
    const total = Number(r.data['kernelMsTotal']);
    const rows = kernels.slice(0, 15).map(([name, ms, calls]) => ({ kernel: name, calls: String(calls), ms: fmt(ms, 0), share: `${((100 * ms) / total).toFixed(1)}%` }));
    const rest = kernels.slice(15).reduce((n, [, ms]) => n + ms, 0);
    rows.push({ kernel: `(${kernels.length - 15} other kernels)`, calls: '', ms: fmt(rest, 0), share: `${((100 * rest) / total).toFixed(1)}%` });
    printTable(`6. Where our training step spends its time (${label}; tf.profile, kernel time summed by kernel name)`, rows, [
      shapeLine(run.s.shape),
      `unprofiled step ${fmt(num(r, 'stepMs'), 0)} ms; profiled step ${fmt(num(r, 'profiledWallMs'), 0)} ms, of which kernels ${fmt(total, 0)} ms (the rest: tape, JS dispatch, profiler bookkeeping).`,
      `TF.js peak tensor memory during the step ${fmt(num(r, 'peakTensorMb'), 0)} MB (tf.profile peakBytes); process peak RSS ${rss(r)} MB.`,
    ]);
  }
  const f = failures(results);
  if (f.length) console.log(f.map((l) => `- ${l}`).join('\n'));
}

const sectionFns: Record<Section, (run: Runner) => Promise<void>> = {
  summary: sectionSummary,
  gpt2: sectionGpt2,
  llama: sectionLlama,
  lora: sectionLora,
  loha: sectionLoha,
  xlora: sectionXLora,
  profile: sectionProfile,
};

async function waitForLoad(maxLoad: number, waitS: number): Promise<void> {
  const until = Date.now() + waitS * 1000;
  const { loadavg } = await import('node:os');
  while (loadavg()[0]! > maxLoad && Date.now() < until) {
    console.error(`[bench] load average ${loadAverage()} above ${maxLoad}; waiting...`);
    await new Promise((r) => setTimeout(r, 15_000));
  }
}

export async function main(argv: string[] = process.argv.slice(2)): Promise<void> {
  const { values } = parseArgs({ args: argv, options, allowPositionals: false });
  const s = settingsFrom(values);
  const wanted = values.section === 'all' ? [...allSections] : values.section.split(',').map((x) => x.trim()).filter(Boolean);
  for (const w of wanted) {
    if (!(w in sectionFns)) throw new Error(`unknown section "${w}"; choose from ${[...allSections, ...optionalSections].join(', ')}`);
  }
  if (values['max-load'] !== undefined) await waitForLoad(Number(values['max-load']), Number(values.wait));
  const started = performance.now();
  const loadBefore = loadAverage();
  console.log(`# peft-ts benchmarks (${new Date().toISOString()})\n`);
  console.log(`- node ${process.version}, ${(await import('node:os')).availableParallelism()} CPUs; load average (1/5/15 min) at start: ${loadBefore} (during a run the benchmark itself keeps up to ${s.threads} cores busy)`);
  console.log(`- sections: ${wanted.join(', ')}${s.torch ? (torchAvailable() ? `; PyTorch from ${torchPython}` : '; PyTorch: not installed') : '; PyTorch: not run'}`);
  const run = new Runner(s);
  for (const w of wanted) {
    const t0 = performance.now();
    await sectionFns[w as Section](run);
    console.log(`- section ${w}: ${((performance.now() - t0) / 1000).toFixed(0)} s wall; load average after: ${loadAverage()}`);
  }
  if (run.torchVersions) console.log(`\nPyTorch side: ${run.torchVersions}.`);
  console.log(`\nTotal ${((performance.now() - started) / 1000).toFixed(0)} s; load average at end: ${loadAverage()}`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await main();
}

// The TypeScript side of the Llama-shaped benchmarks (sections llama, lora, loha, xlora of bench/run.ts). Each
// function runs one configuration in the current process and returns its measurements; bench/worker.ts calls it
// in a fresh child process. tools/parity/bench_torch.py mirrors every one of them for PyTorch.
import { join } from 'node:path';
import { tf } from '../src/engine/index.js';
import { LlamaForCausalLM } from '../src/models/llama/index.js';
import { disposeOutput } from '../src/models/outputs.js';
import { getPeftModel, PeftModel } from '../src/peft-model.js';
import type { AnyPeftConfig } from '../src/tuners/registry.js';
import { LoHaConfig } from '../src/tuners/loha/config.js';
import { LoraConfig } from '../src/tuners/lora/config.js';
import { XLoraConfig } from '../src/tuners/xlora/config.js';
import { median, peakRssMb, repeat, timeMs, timeMsAsync } from './common.js';
import type { Measurement } from './common.js';

/** The model's size and the batch; the same JSON goes to bench_torch.py. */
export interface LlamaShape {
  vocab: number;
  hidden: number;
  layers: number;
  heads: number;
  intermediate: number;
  seq: number;
  batch: number;
}

/** An adapter to put on the model: none (all weights train), LoRA or LoHa on `targets`. */
export interface AdapterSpec {
  type: 'lora' | 'loha';
  r: number;
  alpha: number;
  targets: string[];
}

export interface LlamaCaseArgs {
  shape: LlamaShape;
  adapter: AdapterSpec | null;
  mode: 'forward' | 'train';
  reps: number;
  warmup?: number;
}

/** The raw `config.json` both sides build their model from. */
export function llamaRawConfig(shape: LlamaShape, maxPositions = 1024): Record<string, unknown> {
  return {
    model_type: 'llama',
    vocab_size: shape.vocab,
    hidden_size: shape.hidden,
    intermediate_size: shape.intermediate,
    num_hidden_layers: shape.layers,
    num_attention_heads: shape.heads,
    num_key_value_heads: shape.heads,
    max_position_embeddings: Math.max(maxPositions, shape.seq),
    tie_word_embeddings: false,
  };
}

/** Deterministic token ids, the same formula as bench_torch.py. */
export function benchIds(batch: number, seq: number, vocab: number): number[][] {
  return Array.from({ length: batch }, (_, b) => Array.from({ length: seq }, (_, i) => (b * 131 + i * 7919 + 17) % vocab));
}

function peftConfig(a: AdapterSpec, initRandom = false): AnyPeftConfig {
  return a.type === 'lora'
    ? new LoraConfig({ r: a.r, loraAlpha: a.alpha, targetModules: a.targets, ...(initRandom ? { initLoraWeights: false } : {}) })
    : new LoHaConfig({ r: a.r, alpha: a.alpha, targetModules: a.targets, ...(initRandom ? { initWeights: false } : {}) });
}

/** A model ready to time: its forward, one training step, its trainable-parameter count. */
interface Built {
  model: LlamaForCausalLM;
  peft?: PeftModel<LlamaForCausalLM>;
  trainable: number;
  total: number;
  vars: tf.Variable[];
}

function build(shape: LlamaShape, adapter: AdapterSpec | null): Built {
  const base = new LlamaForCausalLM(llamaRawConfig(shape), { seed: 0 });
  if (!adapter) {
    const vars = base.parameters().filter((p) => p.trainable);
    const total = base.numParameters();
    return { model: base, trainable: vars.reduce((n, v) => n + v.size, 0), total, vars };
  }
  const peft = getPeftModel(base, peftConfig(adapter));
  const [trainable, total] = peft.getNbTrainableParameters();
  return { model: peft.model, peft, trainable, total, vars: peft.parameters().filter((p) => p.trainable) };
}

/** One Adam step over `vars` on the causal-LM loss (labels = inputs). Returns the loss. */
export function makeTrainStep(model: LlamaForCausalLM, vars: tf.Variable[], ids: number[][]): { step: () => number; dispose: () => void } {
  const optimizer = tf.train.adam(1e-4);
  return {
    step() {
      const { value, grads } = tf.variableGrads(() => {
        const out = model.forward({ inputIds: ids, labels: ids });
        out.logits.dispose();
        return out.loss!;
      }, vars);
      optimizer.applyGradients(Object.entries(grads).map(([name, tensor]) => ({ name, tensor })));
      const loss = value.dataSync()[0]!;
      value.dispose();
      tf.dispose(Object.values(grads));
      return loss;
    },
    dispose: () => optimizer.dispose(),
  };
}

/** Eval forward or training step of the Llama-shaped model, with or without an adapter. */
export async function llamaCase(args: LlamaCaseArgs): Promise<Measurement> {
  const { shape, adapter, mode, reps } = args;
  const built = build(shape, adapter);
  const ids = benchIds(shape.batch, shape.seq, shape.vocab);
  const tokens = shape.batch * shape.seq;
  let times: number[];
  let loss = Number.NaN;
  if (mode === 'forward') {
    built.model.eval();
    times = await repeat(() => {
      const out = built.model.forward({ inputIds: ids });
      out.logits.dataSync();
      disposeOutput(out);
    }, reps, args.warmup ?? 1);
  } else {
    built.model.train();
    const trainer = makeTrainStep(built.model, built.vars, ids);
    times = await repeat(() => (loss = trainer.step()), reps, args.warmup ?? 1);
    trainer.dispose();
  }
  const ms = median(times);
  return {
    ms,
    times,
    tokensPerSecond: tokens / (ms / 1000),
    trainable: built.trainable,
    total: built.total,
    loss,
    backend: tf.getBackend(),
    numTensors: tf.memory().numTensors,
    peakRssMb: peakRssMb(),
  };
}

/** Timing per kernel of one training step (`tf.profile`), summed over kernels of the same name. */
export async function profileCase(args: LlamaCaseArgs): Promise<Measurement> {
  const { shape, adapter } = args;
  const built = build(shape, adapter);
  const ids = benchIds(shape.batch, shape.seq, shape.vocab);
  built.model.train();
  const trainer = makeTrainStep(built.model, built.vars, ids);
  trainer.step(); // warm-up
  const wall = timeMs(() => trainer.step());
  const t0 = performance.now();
  const info = await tf.profile(() => {
    trainer.step();
  });
  const profiledWall = performance.now() - t0;
  const byKernel = new Map<string, { ms: number; calls: number }>();
  for (const k of info.kernels) {
    const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : (await k.kernelTimeMs as number | { error: string });
    const entry = byKernel.get(k.name) ?? { ms: 0, calls: 0 };
    entry.ms += typeof ms === 'number' ? ms : 0;
    entry.calls += 1;
    byKernel.set(k.name, entry);
  }
  trainer.dispose();
  const sorted = [...byKernel].sort((a, b) => b[1].ms - a[1].ms);
  const out: Measurement = { stepMs: wall, profiledWallMs: profiledWall, peakTensorMb: info.peakBytes / 2 ** 20, kernelMsTotal: sorted.reduce((n, [, e]) => n + e.ms, 0), kernels: JSON.stringify(sorted.map(([name, e]) => [name, Math.round(e.ms), e.calls])), peakRssMb: peakRssMb() };
  return out;
}

export interface AdapterFolderArgs {
  shape: LlamaShape;
  dir: string;
  names: string[];
  adapter: AdapterSpec;
}

/**
 * Saves `names.length` randomly initialised adapters as `dir/<name>/` with PeftModel.savePretrained: one adapter
 * ("default", which saves to the folder itself), redrawn before each save. (Adding 64 adapters to one model with
 * addAdapter and saving them together is far slower: each injection walks every module, see the report.)
 */
export async function createAdapters(args: AdapterFolderArgs): Promise<Measurement> {
  const base = new LlamaForCausalLM(llamaRawConfig(args.shape), { seed: 0 });
  const peft = getPeftModel(base, peftConfig(args.adapter, true));
  const vars = peft.parameters().filter((p) => p.trainable);
  let seed = 1;
  const ms = await timeMsAsync(async () => {
    for (const name of args.names) {
      for (const v of vars) {
        const value = tf.randomNormal(v.shape, 0, 0.05, 'float32', seed++);
        v.assign(value);
        value.dispose();
      }
      await peft.savePretrained(join(args.dir, name));
    }
  });
  peft.dispose();
  return { saveMs: ms, count: args.names.length, peakRssMb: peakRssMb() };
}

export interface AdapterLoadArgs {
  shape: LlamaShape;
  dir: string;
  names: string[];
  switches: number;
}

/** PeftModel.fromPretrained of the first adapter, loadAdapter of the rest, then setAdapter switching. */
export async function adapterLoadCase(args: AdapterLoadArgs): Promise<Measurement> {
  const base = new LlamaForCausalLM(llamaRawConfig(args.shape), { seed: 0 });
  const [first, ...rest] = args.names;
  let peft: PeftModel<LlamaForCausalLM> | undefined;
  const fromPretrainedMs = await timeMsAsync(async () => (peft = await PeftModel.fromPretrained(base, join(args.dir, first!), { adapterName: first! })));
  const loads: number[] = [];
  for (const name of rest) loads.push(await timeMsAsync(() => peft!.loadAdapter(join(args.dir, name), name)));
  const totalLoadMs = fromPretrainedMs + loads.reduce((a, b) => a + b, 0);
  // Switching: a fixed pseudo-random order over all adapters.
  const switches: number[] = [];
  for (let i = 0; i < args.switches; i++) {
    const name = args.names[(i * 37 + 11) % args.names.length]!;
    switches.push(timeMs(() => peft!.setAdapter(name)));
  }
  // One forward after a switch, to show the adapter is live (and what a switch + short forward costs).
  const ids = benchIds(1, 16, args.shape.vocab);
  peft!.setAdapter(args.names[args.names.length - 1]!);
  const forwardMs = timeMs(() => {
    const out = peft!.model.forward({ inputIds: ids });
    out.logits.dataSync();
    disposeOutput(out);
  });
  return {
    adapters: args.names.length,
    fromPretrainedMs,
    loadAdapterMedianMs: median(loads),
    loadAdapterFirstMs: loads[0] ?? Number.NaN,
    loadAdapterLastMs: loads[loads.length - 1] ?? Number.NaN,
    msPerAdapter: totalLoadMs / args.names.length,
    totalLoadMs,
    switchMedianMs: median(switches),
    switchMeanMs: switches.reduce((a, b) => a + b, 0) / Math.max(1, switches.length),
    forward16Ms: forwardMs,
    peakRssMb: peakRssMb(),
  };
}

export interface XLoraGenerateArgs {
  shape: LlamaShape;
  dir: string;
  experts: string[];
  depth: number;
  layerwise: boolean;
  prompt: number;
  newTokens: number;
  useCache: boolean;
  reps: number;
}

/** X-LoRA generation (greedy, batch 1) with experts from `dir/<expert>/`, cached or uncached. */
export async function xloraGenerateCase(args: XLoraGenerateArgs): Promise<Measurement> {
  const base = new LlamaForCausalLM(llamaRawConfig(args.shape, args.prompt + args.newTokens + 8), { seed: 0 });
  const adapters = Object.fromEntries(args.experts.map((e) => [e, join(args.dir, e)]));
  const config = new XLoraConfig({ hiddenSize: args.shape.hidden, adapters, xloraDepth: args.depth, layerwiseScalings: args.layerwise });
  const xlora = await getPeftModel(base, config);
  xlora.eval();
  const prompt = benchIds(1, args.prompt, args.shape.vocab);
  const run = async (n: number) => {
    const out = await xlora.generate(prompt, { maxNewTokens: n, eosTokenId: [], useCache: args.useCache });
    if (out[0]!.length !== args.prompt + n) throw new Error(`generated ${out[0]!.length - args.prompt} tokens, expected ${n}`);
  };
  await run(4); // warm-up: kernels for both passes, cache growth
  const times: number[] = [];
  for (let i = 0; i < args.reps; i++) times.push(await timeMsAsync(() => run(args.newTokens)));
  const ms = median(times);
  return { ms, times, tokensPerSecond: args.newTokens / (ms / 1000), newTokens: args.newTokens, peakRssMb: peakRssMb() };
}

// `peft-ts train` (LoRA / LoHa adapters) and `peft-ts xlora train` (the X-LoRA classifier over frozen LoRA experts).
import { existsSync } from 'node:fs';
import { appendFile, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { Option } from 'commander';
import { ConfigError } from '../errors.js';
import { AutoModelForCausalLM } from '../models/auto.js';
import type { PreTrainedCausalLM } from '../models/pretrained.js';
import { getPeftModel } from '../peft-model.js';
import { AutoTokenizer } from '../tokenizers/index.js';
import type { PreTrainedTokenizer } from '../tokenizers/index.js';
import { Trainer, METRICS_NAME, loadJsonlDataset } from '../training/index.js';
import type { LoadedData, MetricsRecord, SchedulerType, TrainableModel, TrainingArguments } from '../training/index.js';
import { LoHaConfig } from '../tuners/loha/config.js';
import { LoraConfig } from '../tuners/lora/config.js';
import { trainableParametersLine } from '../tuners/trainable.js';
import { XLoraConfig } from '../tuners/xlora/config.js';
import type { CliIo, GlobalOptions } from './common.js';
import { CliError, intOption, listOption, numberOption, startBackend, tokenizerDir } from './common.js';

/** Options shared by `train` and `xlora train`: data, optimisation, evaluation, checkpoints. */
interface CommonTrainOptions {
  model: string;
  data: string;
  out: string;
  tokenizer?: string;
  lr: number;
  epochs: number;
  maxSteps?: number;
  batchSize: number;
  gradAccum: number;
  maxLength: number;
  limit?: number;
  evalData?: string;
  evalLimit?: number;
  evalSteps?: number;
  saveSteps?: number;
  saveTotalLimit?: number;
  loggingSteps: number;
  warmupSteps: number;
  scheduler: SchedulerType;
  weightDecay: number;
  maxGradNorm: number;
  resume?: boolean;
  seed: number;
  packing?: boolean;
  progress?: boolean;
}

interface TrainOptions extends CommonTrainOptions {
  method: 'lora' | 'loha';
  r: number;
  alpha: number;
  dropout: number;
  targetModules?: string[];
}

interface XLoraTrainOptions extends CommonTrainOptions {
  experts: string[];
  depth: number;
  size: number;
  layerwise?: boolean;
  topK?: number;
  temperature: number;
  xloraDropout: number;
}

function addCommonOptions(cmd: Command, defaults: { lr: string }): Command {
  return cmd
    .requiredOption('--model <dir>', 'base model folder (config.json + safetensors weights)')
    .requiredOption('--data <file>', 'training data, JSONL: {"text"}, {"prompt","completion"} or {"messages"} records')
    .requiredOption('--out <dir>', 'output folder: the adapter, checkpoint-*/ folders and metrics.jsonl')
    .option('--tokenizer <dir>', 'tokenizer folder (default: the model folder)')
    .option('--lr <rate>', 'peak learning rate', numberOption({ min: 0 }), Number(defaults.lr))
    .option('--epochs <n>', 'epochs when --max-steps is not given (fractions allowed)', numberOption({ positive: true }), 1)
    .option('--max-steps <n>', 'optimizer steps (overrides --epochs)', intOption(1))
    .option('--batch-size <n>', 'examples per micro-batch', intOption(1), 4)
    .option('--grad-accum <n>', 'micro-batches per optimizer step', intOption(1), 1)
    .option('--max-length <n>', 'longest sequence in tokens (longer examples are cut); the block size with --packing', intOption(2), 256)
    .option('--packing', 'concatenate the examples and cut them into blocks of --max-length tokens')
    .option('--limit <n>', 'read at most this many records of --data', intOption(1))
    .option('--eval-data <file>', 'validation data (JSONL, same shapes); evaluated before training, every --eval-steps and at the end')
    .option('--eval-limit <n>', 'read at most this many records of --eval-data', intOption(1))
    .option('--eval-steps <n>', 'evaluate every N steps (needs --eval-data)', intOption(1))
    .option('--save-steps <n>', 'write a resumable checkpoint-<step>/ every N steps', intOption(1))
    .option('--save-total-limit <n>', 'keep at most N checkpoints', intOption(1))
    .option('--logging-steps <n>', 'print and record the mean loss every N steps', intOption(1), 10)
    .option('--warmup-steps <n>', 'linear warmup steps', intOption(0), 0)
    .addOption(new Option('--scheduler <type>', 'learning-rate schedule').choices(['linear', 'cosine', 'constant', 'constant_with_warmup']).default('linear'))
    .option('--weight-decay <w>', "AdamW's decoupled weight decay", numberOption({ min: 0 }), 0)
    .option('--max-grad-norm <n>', 'clip gradients to this global norm (0: no clipping)', numberOption({ min: 0 }), 1)
    .option('--resume', 'continue from the newest checkpoint-* in --out (same settings required)')
    .option('--seed <n>', 'seed of the adapter init, data order and dropout', intOption(0), 42)
    .option('--progress', 'draw a progress bar on stderr instead of printing log lines');
}

export function registerTrain(program: Command, io: CliIo): void {
  const cmd = program
    .command('train')
    .description('train a LoRA or LoHa adapter on a causal LM and save it in PEFT format')
    .addOption(new Option('--method <method>', 'adapter type').choices(['lora', 'loha']).default('lora'))
    .option('--r <rank>', 'adapter rank', intOption(1), 8)
    .option('--alpha <alpha>', 'scaling numerator (LoRA lora_alpha, LoHa alpha)', numberOption({ positive: true }), 16)
    .option('--dropout <p>', 'LoRA: lora_dropout; LoHa: rank_dropout', numberOption({ min: 0, max: 0.99 }), 0)
    .option('--target-modules <names>', "modules to adapt, comma-separated, or 'all-linear' (default: PEFT's default for the architecture)", listOption);
  addCommonOptions(cmd, { lr: '2e-4' }).action(async (opts: TrainOptions, command: Command) => {
    const global = command.optsWithGlobals<GlobalOptions>();
    await startBackend(global);
    const base = await AutoModelForCausalLM.fromPretrained(opts.model);
    const targetModules = opts.targetModules === undefined ? {} : { targetModules: opts.targetModules.length === 1 && opts.targetModules[0] === 'all-linear' ? 'all-linear' : opts.targetModules };
    const config =
      opts.method === 'loha'
        ? new LoHaConfig({ r: opts.r, alpha: opts.alpha, rankDropout: opts.dropout, taskType: 'CAUSAL_LM', ...targetModules })
        : new LoraConfig({ r: opts.r, loraAlpha: opts.alpha, loraDropout: opts.dropout, taskType: 'CAUSAL_LM', ...targetModules });
    const model = getPeftModel(base, config, { seed: opts.seed });
    try {
      await trainModel(model as unknown as TrainableModel, base, opts, io);
    } finally {
      model.dispose();
    }
  });
}

/** `--experts a=DIR b=DIR`: name -> folder, in the order given. */
function parseExperts(items: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq <= 0 || eq === item.length - 1) throw new CliError(`--experts: expected name=dir, got "${item}".`);
    const name = item.slice(0, eq);
    if (Object.hasOwn(out, name)) throw new CliError(`--experts: the name "${name}" is given twice.`);
    out[name] = item.slice(eq + 1);
  }
  return out;
}

export function registerXLoraTrain(xlora: Command, io: CliIo): void {
  const cmd = xlora
    .command('train')
    .description('train the X-LoRA classifier that mixes frozen LoRA experts, and save the X-LoRA model (PEFT layout)')
    .requiredOption('--experts <name=dir...>', 'LoRA expert adapters, as name=folder pairs (their order is the expert index)')
    .option('--depth <n>', 'classifier depth (number of Linear layers)', intOption(1), 1)
    .option('--size <n>', 'classifier hidden width (depth > 1)', intOption(1), 64)
    .option('--layerwise', 'one scaling per adapted layer and expert (layerwise_scalings)')
    .option('--top-k <k>', 'keep the k largest scalings per token (top_k_lora)', intOption(1))
    .option('--temperature <t>', 'softmax temperature of the scalings', numberOption({ positive: true }), 1)
    .option('--xlora-dropout <p>', "the classifier's dropout", numberOption({ min: 0, max: 1 }), 0.2);
  addCommonOptions(cmd, { lr: '1e-3' }).action(async (opts: XLoraTrainOptions, command: Command) => {
    const global = command.optsWithGlobals<GlobalOptions>();
    const experts = parseExperts(opts.experts);
    for (const [name, dir] of Object.entries(experts)) {
      if (!existsSync(join(dir, 'adapter_config.json'))) throw new ConfigError([{ code: 'invalid_value', path: ['experts', name], message: `${dir} has no adapter_config.json` }], '--experts');
    }
    await startBackend(global);
    const base = await AutoModelForCausalLM.fromPretrained(opts.model);
    const config = new XLoraConfig({
      adapters: experts,
      xloraDepth: opts.depth,
      xloraSize: opts.size,
      layerwiseScalings: opts.layerwise ?? false,
      topKLora: opts.topK ?? null,
      softmaxTemperature: opts.temperature,
      xloraDropoutP: opts.xloraDropout,
      taskType: 'CAUSAL_LM',
    });
    const model = await getPeftModel(base, config, { seed: opts.seed });
    try {
      await trainModel(model, base, opts, io);
    } finally {
      model.dispose();
    }
  });
}

function describeData(name: string, path: string, data: LoadedData, io: CliIo): void {
  const kinds = Object.entries(data.formats).filter(([, n]) => n > 0).map(([k, n]) => `${n} ${k}`).join(', ');
  const lengths = data.examples.map((e) => e.inputIds.length);
  const tokens = lengths.reduce((s, n) => s + n, 0);
  io.stdout(`${name}: ${path}: ${data.examples.length} examples (${kinds}; ${tokens} tokens, longest ${Math.max(...lengths)})` +
    `${data.truncated ? `, ${data.truncated} truncated` : ''}${data.problems.length ? `, ${data.problems.length} line(s) skipped` : ''}\n`);
  for (const p of data.problems.slice(0, 5)) io.stderr(`peft-ts: warning: ${p.path}:${p.line}: ${p.message}\n`);
  if (data.problems.length > 5) io.stderr(`peft-ts: warning: ... and ${data.problems.length - 5} more skipped line(s)\n`);
}

function fmt(x: number | undefined): string {
  return x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(4);
}

/** Loads the data, trains `model` with the Trainer, saves the adapter in `--out`, printing progress to `io`. */
async function trainModel(model: TrainableModel, base: PreTrainedCausalLM, opts: CommonTrainOptions, io: CliIo): Promise<void> {
  const tokenizer: PreTrainedTokenizer = await AutoTokenizer.fromPretrained(tokenizerDir(opts.tokenizer, [opts.model]));
  const vocab = base.config.raw['vocab_size'];
  if (typeof vocab === 'number' && tokenizer.length > vocab) {
    io.stderr(`peft-ts: warning: the tokenizer has ${tokenizer.length} tokens but the model's vocabulary ${vocab}\n`);
  }
  const dataOptions = { maxLength: opts.maxLength, packing: opts.packing ?? false };
  const train = await loadJsonlDataset(opts.data, tokenizer, { ...dataOptions, ...(opts.limit === undefined ? {} : { limit: opts.limit }) });
  describeData('train', opts.data, train, io);
  const evalData = opts.evalData === undefined ? undefined : await loadJsonlDataset(opts.evalData, tokenizer, { ...dataOptions, ...(opts.evalLimit === undefined ? {} : { limit: opts.evalLimit }) });
  if (evalData) describeData('eval', opts.evalData!, evalData, io);
  if (opts.evalSteps !== undefined && !evalData) throw new CliError('--eval-steps needs --eval-data.');
  io.stdout(trainableParametersLine(model) + '\n');

  const args: TrainingArguments = {
    outputDir: opts.out,
    learningRate: opts.lr,
    numTrainEpochs: opts.epochs,
    perDeviceTrainBatchSize: opts.batchSize,
    gradientAccumulationSteps: opts.gradAccum,
    loggingSteps: opts.loggingSteps,
    warmupSteps: opts.warmupSteps,
    lrSchedulerType: opts.scheduler,
    weightDecay: opts.weightDecay,
    maxGradNorm: opts.maxGradNorm,
    seed: opts.seed,
    progressBar: opts.progress ?? false,
    ...(opts.maxSteps === undefined ? {} : { maxSteps: opts.maxSteps }),
    ...(opts.evalSteps === undefined ? {} : { evalSteps: opts.evalSteps }),
    ...(opts.saveSteps === undefined ? {} : { saveSteps: opts.saveSteps }),
    ...(opts.saveTotalLimit === undefined ? {} : { saveTotalLimit: opts.saveTotalLimit }),
    ...(opts.resume ? { resumeFromCheckpoint: true } : {}),
  };
  const quiet = opts.progress ?? false;
  const trainer = new Trainer({
    model,
    args,
    trainDataset: train.examples,
    ...(evalData ? { evalDataset: evalData.examples } : {}),
    padTokenId: tokenizer.padTokenId ?? tokenizer.eosTokenId ?? 0,
    callbacks: {
      onLog: (r: MetricsRecord) => {
        if (!quiet) io.stdout(`step ${r.step}/${trainer.args.maxSteps}  loss ${fmt(r.loss)}  lr ${r.learningRate?.toExponential(2) ?? '-'}  grad_norm ${fmt(r.gradNorm)}  ${r.tokensPerSecond ?? '-'} tok/s\n`);
      },
      onEvaluate: ({ step, evalLoss }) => {
        if (!quiet) io.stdout(`step ${step}/${trainer.args.maxSteps}  eval_loss ${fmt(evalLoss)}\n`);
      },
      onSave: ({ dir }) => {
        if (!quiet) io.stdout(`saved checkpoint ${dir}\n`);
      },
    },
  });
  try {
    await mkdir(opts.out, { recursive: true });
    const metrics = join(opts.out, METRICS_NAME);
    if (!opts.resume) {
      // A fresh run: metrics of an earlier run in the same folder would mix into this one's curves.
      await rm(metrics, { force: true });
      if (evalData) {
        const evalLoss = trainer.evaluate();
        io.stdout(`step 0/${trainer.args.maxSteps}  eval_loss ${fmt(evalLoss)}\n`);
        const record: MetricsRecord = { step: 0, epoch: 0, evalLoss, elapsedSeconds: 0 };
        await appendFile(metrics, JSON.stringify(record) + '\n');
      }
    }
    const result = await trainer.train();
    io.stdout(
      `done: ${result.globalStep} steps (${result.stopReason}) in ${result.elapsedSeconds.toFixed(1)} s; train loss ${fmt(result.trainLoss)}` +
        `${result.evalLoss === undefined ? '' : `; eval loss ${fmt(result.evalLoss)}`}\nsaved adapter to ${opts.out}\n`,
    );
  } finally {
    trainer.dispose();
  }
}

// `peft-ts inspect DIR`: what an adapter folder holds, from its config and the safetensors header only (no model,
// no tensor data read): LoRA / LoHa / X-LoRA (PEFT or the original X-LoRA layout), ranks, alpha, targets, parameter
// count, base model, and a summary of the tensors.
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { SafetensorsFile } from '../io/index.js';
import type { CliIo } from './common.js';
import { CliError, formatCount } from './common.js';

/** Tensors whose names differ only in layer numbers, e.g. `model.layers.*.self_attn.q_proj.lora_A.weight`. */
export interface TensorGroup {
  pattern: string;
  count: number;
  shapes: string[];
  dtypes: string[];
  parameters: number;
}

export interface AdapterInspection {
  path: string;
  /** 'LoRA', 'LoHa', 'X-LoRA' or PEFT's `peft_type` for other methods. */
  method: string;
  peftType: string;
  /** Where the files follow PEFT's layout, or the original X-LoRA package's (`xlora_config.json`). */
  layout: 'peft' | 'original';
  baseModel: string | null;
  taskType: string | null;
  /** The config's `r` (LoRA, LoHa). */
  r?: number;
  /** `lora_alpha` (LoRA) or `alpha` (LoHa). */
  alpha?: number;
  rankPattern?: Record<string, number>;
  alphaPattern?: Record<string, number>;
  /** Ranks found in the tensors (distinct, ascending). */
  ranks: number[];
  /** The config's `target_modules`. */
  targetModules: string[] | string | null;
  /** Modules with adapter tensors in the file (full paths, without `base_model.model.`). */
  adaptedModules: string[];
  /** The adapted modules' last names (e.g. `q_proj`), with counts. */
  adaptedNames: Record<string, number>;
  modulesToSave: string[] | null;
  /** LoRA variants in use (`dora`, `rslora`). */
  variants: string[];
  weightsFile: string | null;
  tensors: number;
  /** Elements of every tensor in the weights file. */
  parameters: number;
  bytes: number;
  dtypes: Record<string, number>;
  groups: TensorGroup[];
  /** X-LoRA: the classifier settings and the experts. */
  xlora?: {
    depth: number | null;
    size: number | null;
    layerwise: boolean | null;
    topK: number | null;
    temperature: number | null;
    enableSoftmax: boolean | null;
    hiddenSize: number | null;
    experts: (AdapterInspection & { name: string })[];
  };
  /** Parameters of the folder with its experts (X-LoRA), else `parameters`. */
  totalParameters: number;
}

type Json = Record<string, unknown>;

async function readJson(path: string): Promise<Json> {
  let value: unknown;
  try {
    value = JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    throw new CliError(`cannot read ${path}: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new CliError(`${path} is not a JSON object.`);
  return value as Json;
}

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const num = (v: unknown): number | null => (typeof v === 'number' ? v : null);
const bool = (v: unknown): boolean | null => (typeof v === 'boolean' ? v : null);
const numRecord = (v: unknown): Record<string, number> | undefined =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length > 0 ? (v as Record<string, number>) : undefined;

const METHOD_NAMES: Record<string, string> = { LORA: 'LoRA', LOHA: 'LoHa', XLORA: 'X-LoRA' };

/** Adapter tensor name -> [module path, tensor role] (`lora_A`, `hada_w1_b`, ...). */
const ADAPTER_KEY = /^(?:base_model\.model\.)?(.+?)\.(lora_(?:A|B|embedding_A|embedding_B|magnitude_vector)|hada_(?:w1_a|w1_b|w2_a|w2_b|t1|t2))(?:\.[^.]+)?$/;

function rankOf(role: string, shape: readonly number[]): number | undefined {
  switch (role) {
    case 'lora_A':
    case 'lora_embedding_A':
    case 'hada_w1_b':
    case 'hada_w2_b':
      return shape[0];
    case 'lora_B':
    case 'lora_embedding_B':
    case 'hada_w1_a':
    case 'hada_w2_a':
      return shape[1];
    default:
      return undefined;
  }
}

interface HeaderSummary {
  tensors: number;
  parameters: number;
  bytes: number;
  dtypes: Record<string, number>;
  groups: TensorGroup[];
  ranks: number[];
  adaptedModules: string[];
}

async function summarizeWeights(path: string): Promise<HeaderSummary> {
  const file = await SafetensorsFile.open(path);
  try {
    const groups = new Map<string, TensorGroup>();
    const dtypes: Record<string, number> = {};
    const ranks = new Set<number>();
    const modules = new Set<string>();
    let parameters = 0;
    let bytes = 0;
    for (const key of file.keys()) {
      const info = file.info(key);
      const size = info.shape.reduce((a, b) => a * b, 1);
      parameters += size;
      bytes += info.byteRange[1] - info.byteRange[0];
      dtypes[info.dtype] = (dtypes[info.dtype] ?? 0) + 1;
      const pattern = key.replace(/^base_model\.model\./, '').replace(/\.\d+\./g, '.*.');
      const group = groups.get(pattern) ?? { pattern, count: 0, shapes: [], dtypes: [], parameters: 0 };
      group.count++;
      group.parameters += size;
      const shape = `[${info.shape.join(', ')}]`;
      if (!group.shapes.includes(shape)) group.shapes.push(shape);
      if (!group.dtypes.includes(info.dtype)) group.dtypes.push(info.dtype);
      groups.set(pattern, group);
      const m = ADAPTER_KEY.exec(key);
      if (m) {
        modules.add(m[1]!);
        const r = rankOf(m[2]!, info.shape);
        if (r !== undefined) ranks.add(r);
      }
    }
    return { tensors: file.keys().length, parameters, bytes, dtypes, groups: [...groups.values()], ranks: [...ranks].sort((a, b) => a - b), adaptedModules: [...modules] };
  } finally {
    await file.close();
  }
}

function emptySummary(): HeaderSummary {
  return { tensors: 0, parameters: 0, bytes: 0, dtypes: {}, groups: [], ranks: [], adaptedModules: [] };
}

/** X-LoRA expert name -> folder: a subfolder of the checkpoint when present, else the recorded path. */
function expertDir(dir: string, name: string, path: string): string {
  if (existsSync(join(dir, name, 'adapter_config.json'))) return join(dir, name);
  return isAbsolute(path) ? path : resolve(dir, path);
}

/** Inspects an adapter folder (see the module comment). Throws `CliError` for folders that are not adapters. */
export async function inspectAdapter(dir: string): Promise<AdapterInspection> {
  if (!existsSync(dir) || !(await stat(dir)).isDirectory()) throw new CliError(`${dir} is not a folder.`);
  const peftConfig = join(dir, 'adapter_config.json');
  const originalConfig = join(dir, 'xlora_config.json');
  let layout: 'peft' | 'original';
  let config: Json;
  if (existsSync(peftConfig)) {
    layout = 'peft';
    config = await readJson(peftConfig);
  } else if (existsSync(originalConfig)) {
    layout = 'original';
    config = { ...(await readJson(originalConfig)), peft_type: 'XLORA' };
  } else {
    throw new CliError(`${dir} is not an adapter folder: it has neither adapter_config.json nor xlora_config.json.`);
  }
  const peftType = str(config['peft_type']) ?? (layout === 'original' ? 'XLORA' : 'LORA');
  const isXLora = peftType === 'XLORA';
  const weightsName = layout === 'original' ? 'xlora_classifier.safetensors' : 'adapter_model.safetensors';
  const weightsPath = join(dir, weightsName);
  const weights = existsSync(weightsPath) ? await summarizeWeights(weightsPath) : emptySummary();
  const targets = config['target_modules'];
  const adaptedNames: Record<string, number> = {};
  for (const m of weights.adaptedModules) {
    const name = m.slice(m.lastIndexOf('.') + 1);
    adaptedNames[name] = (adaptedNames[name] ?? 0) + 1;
  }
  const variants = [...(config['use_dora'] === true ? ['dora'] : []), ...(config['use_rslora'] === true ? ['rslora'] : [])];
  const out: AdapterInspection = {
    path: dir,
    method: METHOD_NAMES[peftType] ?? peftType,
    peftType,
    layout,
    baseModel: str(config['base_model_name_or_path']) ?? str(config['base_model_id']),
    taskType: str(config['task_type']),
    ...(num(config['r']) === null ? {} : { r: num(config['r'])! }),
    ...(num(config['lora_alpha'] ?? config['alpha']) === null ? {} : { alpha: num(config['lora_alpha'] ?? config['alpha'])! }),
    ...(numRecord(config['rank_pattern']) ? { rankPattern: numRecord(config['rank_pattern'])! } : {}),
    ...(numRecord(config['alpha_pattern']) ? { alphaPattern: numRecord(config['alpha_pattern'])! } : {}),
    ranks: weights.ranks,
    targetModules: typeof targets === 'string' || Array.isArray(targets) ? (targets as string[] | string) : null,
    adaptedModules: weights.adaptedModules,
    adaptedNames,
    modulesToSave: Array.isArray(config['modules_to_save']) ? (config['modules_to_save'] as string[]) : null,
    variants,
    weightsFile: existsSync(weightsPath) ? weightsName : null,
    tensors: weights.tensors,
    parameters: weights.parameters,
    bytes: weights.bytes,
    dtypes: weights.dtypes,
    groups: weights.groups,
    totalParameters: weights.parameters,
  };
  if (isXLora) {
    const adapters = config['adapters'];
    const entries: [string, string][] = Array.isArray(adapters)
      ? (adapters as unknown[]).map((n) => [String(n), String(n)])
      : typeof adapters === 'object' && adapters !== null
        ? Object.entries(adapters as Record<string, unknown>).map(([k, v]) => [k, String(v)])
        : [];
    const experts: (AdapterInspection & { name: string })[] = [];
    for (const [name, path] of entries) {
      const edir = expertDir(dir, name, path);
      if (!existsSync(join(edir, 'adapter_config.json'))) throw new CliError(`X-LoRA expert "${name}" is not at ${edir} (no adapter_config.json).`);
      experts.push({ name, ...(await inspectAdapter(edir)) });
    }
    out.xlora = {
      depth: num(config['xlora_depth']),
      size: num(config['xlora_size']),
      layerwise: bool(config['layerwise_scalings']),
      topK: num(config['top_k_lora']),
      temperature: num(config['softmax_temperature']),
      enableSoftmax: bool(config['enable_softmax']),
      hiddenSize: num(config['hidden_size']),
      experts,
    };
    out.ranks = [...new Set(experts.flatMap((e) => e.ranks))].sort((a, b) => a - b);
    out.totalParameters = weights.parameters + experts.reduce((s, e) => s + e.totalParameters, 0);
  }
  if (out.weightsFile === null) throw new CliError(`${dir} has no ${weightsName}.`);
  return out;
}

function bytesText(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

/** The human-readable report. */
export function formatInspection(a: AdapterInspection, indent = ''): string {
  const lines: string[] = [];
  const add = (s: string) => lines.push(indent + s);
  add(`adapter: ${a.path}`);
  add(`method: ${a.method}${a.variants.length ? ` (${a.variants.join(', ')})` : ''}, ${a.layout === 'peft' ? 'PEFT' : 'original X-LoRA'} layout`);
  add(`base model: ${a.baseModel ?? '(not recorded)'}${a.taskType ? `, task ${a.taskType}` : ''}`);
  if (a.xlora) {
    const x = a.xlora;
    add(`classifier: depth ${x.depth ?? '?'}, size ${x.size ?? '?'}, hidden ${x.hiddenSize ?? '?'}, ${x.layerwise ? 'layerwise' : 'shared'} scalings, ` +
      `softmax ${x.enableSoftmax === false ? 'off' : `on (temperature ${x.temperature ?? 1})`}, top-k ${x.topK ?? 'none'}`);
    add(`experts: ${x.experts.length} (${x.experts.map((e) => `${e.name}: r=${e.ranks.join('/') || e.r}`).join(', ')})`);
  } else {
    const rank = a.r === undefined ? '' : `r=${a.r}`;
    const fileRanks = a.ranks.length && (a.ranks.length > 1 || a.ranks[0] !== a.r) ? ` (in file: ${a.ranks.join(', ')})` : '';
    add(`rank: ${rank}${fileRanks}${a.rankPattern ? `, rank_pattern ${JSON.stringify(a.rankPattern)}` : ''}; alpha: ${a.alpha ?? '?'}${a.alphaPattern ? `, alpha_pattern ${JSON.stringify(a.alphaPattern)}` : ''}`);
    const targets = a.targetModules === null ? '(none)' : Array.isArray(a.targetModules) ? a.targetModules.join(', ') : a.targetModules;
    add(`target modules: ${targets}`);
    const adapted = Object.entries(a.adaptedNames).map(([n, c]) => `${n} x${c}`).join(', ');
    add(`adapted modules: ${a.adaptedModules.length}${adapted ? ` (${adapted})` : ''}`);
    if (a.modulesToSave?.length) add(`modules to save: ${a.modulesToSave.join(', ')}`);
  }
  const dtypes = Object.entries(a.dtypes).map(([d, n]) => `${n} ${d}`).join(', ');
  add(`parameters: ${formatCount(a.parameters)} in ${a.tensors} tensors (${dtypes || 'none'}; ${bytesText(a.bytes)}) in ${a.weightsFile}`);
  if (a.xlora) add(`parameters with experts: ${formatCount(a.totalParameters)}`);
  add('tensors:');
  const width = Math.max(...a.groups.map((g) => g.pattern.length), 0);
  for (const g of a.groups) add(`  ${g.pattern.padEnd(width)}  x${String(g.count).padEnd(3)} ${g.shapes.join(' ')} ${g.dtypes.join('/')}  ${formatCount(g.parameters)}`);
  for (const e of a.xlora?.experts ?? []) {
    lines.push('');
    add(`expert "${e.name}":`);
    lines.push(formatInspection(e, indent + '  '));
  }
  return lines.join('\n');
}

export function registerInspect(program: Command, io: CliIo): void {
  program
    .command('inspect')
    .description('show what an adapter folder holds: method, rank, alpha, targets, parameter count, base model, tensors (no model needed)')
    .argument('<dir>', 'adapter folder (LoRA, LoHa or X-LoRA; PEFT or original X-LoRA layout)')
    .option('--json', 'print machine-readable JSON')
    .action(async (dir: string, opts: { json?: boolean }) => {
      const report = await inspectAdapter(dir);
      io.stdout((opts.json ? JSON.stringify(report, null, 2) : formatInspection(report)) + '\n');
    });
}

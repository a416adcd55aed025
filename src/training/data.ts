/**
 * Training data from JSONL files, one record a line, in one of three shapes:
 *
 * - `{"text": "..."}`: causal LM on the whole text (tokenized with the tokenizer's special tokens, EOS appended).
 * - `{"prompt": "...", "completion": "..."}`: loss on the completion only; the prompt's labels are -100. The two
 *   are tokenized separately (prompt with special tokens, completion without, then EOS), as TRL does.
 * - `{"messages": [{"role": "...", "content": "..."}, ...]}`: rendered with the tokenizer's chat template. The
 *   loss covers the assistant turns when the template renders incrementally (each assistant turn's tokens are
 *   found as the difference between the conversation up to that turn and the one before it with the
 *   generation prompt, and both are token prefixes of the whole); when a template does not (it rewrites earlier
 *   turns, or a token merges across a turn boundary), the loss covers the whole conversation, and the example's
 *   `assistantOnly` is false.
 *
 * Bad lines (invalid JSON, unknown shape, wrong types, nothing to learn from after tokenizing) are reported with
 * their line number: skipped and listed in `problems` (default), or fatal (`onBadLine: 'error'`, a `DataError`
 * listing every problem). Blank lines are not records and are ignored. Nothing is dropped silently.
 */
import { readFile } from 'node:fs/promises';
import type { DataProblem } from '../errors.js';
import { DataError } from '../errors.js';
import { IGNORE_INDEX } from '../models/loss.js';
import type { PreTrainedTokenizer } from '../tokenizers/tokenizer.js';
import type { ChatMessage } from '../tokenizers/chat.js';

/** A tokenized example: `labels` aligned with `inputIds` (shifted inside the model's loss), -100 where no loss. */
export interface TrainExample {
  inputIds: number[];
  labels: number[];
  /** Source line (1-based) for examples read from a file (a packed block: its first example's line). */
  line?: number;
  /** Chat examples: whether the loss is on the assistant turns only (false: the whole conversation). */
  assistantOnly?: boolean;
}

/** A padded batch (right padding; mask 0 and label -100 on padding). */
export interface Batch {
  inputIds: number[][];
  attentionMask: number[][];
  labels: number[][];
}

export type RecordFormat = 'text' | 'prompt_completion' | 'messages';

export interface JsonlRecord {
  /** 1-based line number in the file. */
  line: number;
  value: Record<string, unknown>;
}

export interface ReadJsonlOptions {
  /** `'skip'` (default): bad lines are listed in `problems` and left out; `'error'`: throw a `DataError`. */
  onBadLine?: 'skip' | 'error';
  /** Read at most this many records (after skipping bad lines). */
  limit?: number;
}

export interface LoadDataOptions extends ReadJsonlOptions {
  /**
   * Longest sequence: examples are truncated to it (reported in `truncated`), or with `packing` the block size.
   * Default: the tokenizer's `modelMaxLength` when finite, capped at 1024.
   */
  maxLength?: number;
  /** Concatenate all examples (labels included) and cut them into blocks of `maxLength` tokens. Default false. */
  packing?: boolean;
  /** Append the EOS token to text and completion records (default true). */
  addEos?: boolean;
  /** A chat template (name or Jinja source) for `messages` records, instead of the tokenizer's default. */
  chatTemplate?: string;
}

export interface LoadedData {
  examples: TrainExample[];
  /** Lines that were skipped, with the reason. */
  problems: DataProblem[];
  /** Examples cut to `maxLength` (without packing). */
  truncated: number;
  /** Records of each shape that were kept. */
  formats: Record<RecordFormat, number>;
}

/** Reads a JSONL file into objects, reporting (or throwing on) lines that are not JSON objects. */
export async function readJsonl(path: string, options: ReadJsonlOptions = {}): Promise<{ records: JsonlRecord[]; problems: DataProblem[] }> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new DataError(`Cannot read training data ${path}: ${error instanceof Error ? error.message : String(error)}`, [], { cause: error });
  }
  const records: JsonlRecord[] = [];
  const problems: DataProblem[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    if (options.limit !== undefined && records.length >= options.limit) break;
    const raw = lines[i]!;
    if (raw.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (error) {
      problems.push({ path, line: i + 1, message: `invalid JSON (${error instanceof Error ? error.message : String(error)})` });
      continue;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      problems.push({ path, line: i + 1, message: `expected a JSON object, got ${Array.isArray(value) ? 'an array' : typeof value}` });
      continue;
    }
    records.push({ line: i + 1, value: value as Record<string, unknown> });
  }
  if (problems.length && options.onBadLine === 'error') throw new DataError(`${path}: ${problems.length} bad line(s)`, problems);
  return { records, problems };
}

/** Which shape a record has, or a message saying why it has none. */
export function recordFormat(value: Record<string, unknown>): RecordFormat | string {
  if ('messages' in value) {
    const messages = value['messages'];
    if (!Array.isArray(messages) || messages.length === 0) return '"messages" must be a non-empty array';
    for (const [i, m] of messages.entries()) {
      if (typeof m !== 'object' || m === null) return `messages[${i}] is not an object`;
      const { role, content } = m as Record<string, unknown>;
      if (typeof role !== 'string') return `messages[${i}].role must be a string`;
      if (typeof content !== 'string' && !Array.isArray(content)) return `messages[${i}].content must be a string or an array of parts`;
    }
    return 'messages';
  }
  if ('prompt' in value || 'completion' in value) {
    if (typeof value['prompt'] !== 'string') return '"prompt" must be a string';
    if (typeof value['completion'] !== 'string') return '"completion" must be a string';
    if (value['completion'] === '') return '"completion" is empty';
    return 'prompt_completion';
  }
  if ('text' in value) {
    if (typeof value['text'] !== 'string') return '"text" must be a string';
    if (value['text'] === '') return '"text" is empty';
    return 'text';
  }
  return `no "text", "prompt"/"completion" or "messages" field (keys: ${Object.keys(value).slice(0, 5).join(', ') || 'none'})`;
}

const isPrefix = (prefix: readonly number[], of: readonly number[]): boolean => prefix.length <= of.length && prefix.every((t, i) => of[i] === t);

function tokenizeMessages(messages: readonly ChatMessage[], tokenizer: PreTrainedTokenizer, chatTemplate: string | undefined): TrainExample {
  const opts = chatTemplate === undefined ? {} : { chatTemplate };
  const ids = tokenizer.applyChatTemplate(messages, { ...opts, tokenize: true });
  const labels = new Array<number>(ids.length).fill(IGNORE_INDEX);
  let assistantOnly = messages.some((m) => m.role === 'assistant');
  if (assistantOnly) {
    try {
      for (let i = 0; i < messages.length && assistantOnly; i++) {
        if (messages[i]!.role !== 'assistant') continue;
        const before = tokenizer.applyChatTemplate(messages.slice(0, i), { ...opts, tokenize: true, addGenerationPrompt: true });
        const upTo = tokenizer.applyChatTemplate(messages.slice(0, i + 1), { ...opts, tokenize: true });
        if (!isPrefix(before, upTo) || !isPrefix(upTo, ids)) {
          assistantOnly = false;
          break;
        }
        for (let t = before.length; t < upTo.length; t++) labels[t] = ids[t]!;
      }
    } catch {
      assistantOnly = false; // the template refuses partial conversations
    }
  }
  return assistantOnly ? { inputIds: ids, labels, assistantOnly } : { inputIds: ids, labels: [...ids], assistantOnly: false };
}

/** Tokenizes one record of a known shape (see the module comment); throws a string-message `Error` on failure. */
export function tokenizeRecord(
  value: Record<string, unknown>,
  format: RecordFormat,
  tokenizer: PreTrainedTokenizer,
  options: { addEos?: boolean; chatTemplate?: string } = {},
): TrainExample {
  const eos = options.addEos === false ? undefined : tokenizer.eosTokenId;
  const withEos = (ids: number[]) => (eos !== undefined && ids.at(-1) !== eos ? [...ids, eos] : ids);
  switch (format) {
    case 'text': {
      const ids = withEos(tokenizer.encode(value['text'] as string));
      return { inputIds: ids, labels: [...ids] };
    }
    case 'prompt_completion': {
      const prompt = tokenizer.encode(value['prompt'] as string);
      const completion = withEos(tokenizer.encode(value['completion'] as string, { addSpecialTokens: false }));
      return { inputIds: [...prompt, ...completion], labels: [...prompt.map(() => IGNORE_INDEX), ...completion] };
    }
    case 'messages':
      return tokenizeMessages(value['messages'] as ChatMessage[], tokenizer, options.chatTemplate);
  }
}

/** Number of labels the causal loss uses (labels are shifted: position 0 never counts). */
export function countLossTokens(labels: readonly number[]): number {
  let n = 0;
  for (let i = 1; i < labels.length; i++) if (labels[i] !== IGNORE_INDEX) n++;
  return n;
}

function defaultMaxLength(tokenizer: PreTrainedTokenizer): number {
  const m = tokenizer.modelMaxLength;
  return m !== undefined && Number.isFinite(m) && m > 0 ? Math.min(m, 1024) : 1024;
}

/** Reads and tokenizes a JSONL data file (see the module comment for the shapes and the handling of bad lines). */
export async function loadJsonlDataset(path: string, tokenizer: PreTrainedTokenizer, options: LoadDataOptions = {}): Promise<LoadedData> {
  const maxLength = options.maxLength ?? defaultMaxLength(tokenizer);
  if (!Number.isInteger(maxLength) || maxLength < 2) throw new DataError(`maxLength must be an integer >= 2, got ${maxLength}.`);
  const { records, problems } = await readJsonl(path, { limit: options.limit });
  const examples: TrainExample[] = [];
  const formats: Record<RecordFormat, number> = { text: 0, prompt_completion: 0, messages: 0 };
  let truncated = 0;
  for (const { line, value } of records) {
    const format = recordFormat(value);
    if (format !== 'text' && format !== 'prompt_completion' && format !== 'messages') {
      problems.push({ path, line, message: format });
      continue;
    }
    let example: TrainExample;
    try {
      example = tokenizeRecord(value, format, tokenizer, options);
    } catch (error) {
      problems.push({ path, line, message: `cannot tokenize: ${error instanceof Error ? error.message : String(error)}` });
      continue;
    }
    const cut = !options.packing && example.inputIds.length > maxLength;
    if (cut) example = { ...example, inputIds: example.inputIds.slice(0, maxLength), labels: example.labels.slice(0, maxLength) };
    if (countLossTokens(example.labels) === 0) {
      problems.push({ path, line, message: example.inputIds.length < 2 ? 'fewer than 2 tokens: nothing to predict' : `no completion tokens within maxLength ${maxLength}` });
      continue;
    }
    if (cut) truncated++;
    formats[format]++;
    examples.push({ ...example, line });
  }
  problems.sort((a, b) => a.line - b.line);
  if (problems.length && options.onBadLine === 'error') throw new DataError(`${path}: ${problems.length} bad line(s)`, problems);
  if (examples.length === 0) throw new DataError(`${path} has no usable examples`, problems);
  return { examples: options.packing ? packExamples(examples, maxLength) : examples, problems, truncated, formats };
}

/**
 * Packing: concatenates the examples (inputs and labels) and cuts the stream into blocks of `blockSize` tokens;
 * a final shorter block is kept when it has something to predict. Attention is not reset at example boundaries
 * (as transformers' `group_texts`); every example ends with EOS, which marks the boundary.
 */
export function packExamples(examples: readonly TrainExample[], blockSize: number): TrainExample[] {
  const ids: number[] = [];
  const labels: number[] = [];
  const starts: [number, number | undefined][] = [];
  for (const e of examples) {
    starts.push([ids.length, e.line]);
    ids.push(...e.inputIds);
    labels.push(...e.labels);
  }
  const blocks: TrainExample[] = [];
  let s = 0;
  for (let start = 0; start < ids.length; start += blockSize) {
    while (s + 1 < starts.length && starts[s + 1]![0] <= start) s++;
    const block: TrainExample = { inputIds: ids.slice(start, start + blockSize), labels: labels.slice(start, start + blockSize) };
    const line = starts[s]?.[1];
    if (line !== undefined) block.line = line;
    if (countLossTokens(block.labels) > 0) blocks.push(block);
  }
  return blocks;
}

/** Pads examples on the right to the longest one: `padTokenId` in inputs, 0 in the mask, -100 in the labels. */
export function collate(examples: readonly TrainExample[], padTokenId: number): Batch {
  const width = examples.reduce((m, e) => Math.max(m, e.inputIds.length), 0);
  const batch: Batch = { inputIds: [], attentionMask: [], labels: [] };
  for (const e of examples) {
    const pad = width - e.inputIds.length;
    batch.inputIds.push([...e.inputIds, ...new Array<number>(pad).fill(padTokenId)]);
    batch.attentionMask.push([...new Array<number>(e.inputIds.length).fill(1), ...new Array<number>(pad).fill(0)]);
    batch.labels.push([...e.labels, ...new Array<number>(pad).fill(IGNORE_INDEX)]);
  }
  return batch;
}

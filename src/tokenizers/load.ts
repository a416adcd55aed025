/** Reading tokenizer files from a folder or from explicit paths. */
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TokenizerError } from '../errors.js';
import { isJsonObject, type JsonObject, type TokenizerSource } from './config.js';

/** Explicit tokenizer files: each a path or an already-parsed object (for flat files such as `llama_tokenizer.json`). */
export interface TokenizerFiles {
  readonly tokenizerJson: string | JsonObject;
  readonly tokenizerConfig?: string | JsonObject;
  readonly specialTokensMap?: string | JsonObject;
  /** Path of a `chat_template.jinja` file. */
  readonly chatTemplateFile?: string;
}

async function readText(path: string, required: boolean): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if (!required && (err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new TokenizerError(`Cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
}

async function readJson(source: string | JsonObject | undefined, required: boolean): Promise<JsonObject | undefined> {
  if (source === undefined || isJsonObject(source)) return source;
  const text = await readText(source, required);
  if (text === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new TokenizerError(`${source} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  if (!isJsonObject(parsed)) throw new TokenizerError(`${source} must hold a JSON object.`);
  return parsed;
}

export async function readTokenizerFiles(files: TokenizerFiles): Promise<TokenizerSource> {
  const tokenizerJson = (await readJson(files.tokenizerJson, true))!;
  return {
    tokenizerJson,
    tokenizerConfig: await readJson(files.tokenizerConfig, true),
    specialTokensMap: await readJson(files.specialTokensMap, true),
    chatTemplate: files.chatTemplateFile === undefined ? undefined : await readText(files.chatTemplateFile, true),
  };
}

/** A saved tokenizer folder: `tokenizer.json` (required), `tokenizer_config.json`, `special_tokens_map.json`, chat templates. */
export async function readTokenizerDirectory(dir: string): Promise<TokenizerSource> {
  const tokenizerJson = await readJson(join(dir, 'tokenizer.json'), false);
  if (!tokenizerJson) {
    const slow = ['vocab.json', 'tokenizer.model', 'vocab.txt'];
    const found: string[] = [];
    for (const f of slow) {
      await access(join(dir, f)).then(
        () => found.push(f),
        () => undefined,
      );
    }
    throw new TokenizerError(
      `${dir} has no tokenizer.json${found.length ? ` (only slow-tokenizer files: ${found.join(', ')})` : ''}. peft-ts loads fast ` +
        'tokenizers; create tokenizer.json in Python with AutoTokenizer.from_pretrained(path).save_pretrained(path).',
    );
  }
  const tokenizerConfig = await readJson(join(dir, 'tokenizer_config.json'), false);
  const specialTokensMap = await readJson(join(dir, 'special_tokens_map.json'), false);
  let chatTemplate = await readText(join(dir, 'chat_template.jinja'), false);
  if (chatTemplate === undefined) {
    // Older processors save the template as { "chat_template": "..." } in chat_template.json.
    const json = await readJson(join(dir, 'chat_template.json'), false);
    if (typeof json?.['chat_template'] === 'string') chatTemplate = json['chat_template'];
  }
  return { tokenizerJson, tokenizerConfig, specialTokensMap, chatTemplate };
}

/**
 * Reading `tokenizer_config.json` / `special_tokens_map.json` into the settings transformers derives from them, and
 * the special-token layout (what `add_special_tokens` wraps around a sequence) from `tokenizer.json`.
 */
import { TokenizerError } from '../errors.js';

export type JsonObject = Record<string, unknown>;

export const SPECIAL_TOKEN_KEYS = ['bos', 'eos', 'unk', 'sep', 'pad', 'cls', 'mask'] as const;
export type SpecialTokenKey = (typeof SPECIAL_TOKEN_KEYS)[number];

export type Side = 'left' | 'right';

/** Parsed tokenizer files; only `tokenizerJson` is required. */
export interface TokenizerSource {
  readonly tokenizerJson: JsonObject;
  readonly tokenizerConfig?: JsonObject;
  readonly specialTokensMap?: JsonObject;
  /** A `chat_template.jinja` file's text, which takes precedence over the config's default template. */
  readonly chatTemplate?: string;
}

export interface TokenizerSettings {
  readonly specialTokens: Partial<Record<SpecialTokenKey, string>>;
  readonly additionalSpecialTokens: readonly string[];
  readonly paddingSide: Side;
  readonly truncationSide: Side;
  readonly modelMaxLength: number;
  readonly cleanUpTokenizationSpaces: boolean;
  /** Named chat templates; a single template is stored as `default`. */
  readonly chatTemplates: ReadonlyMap<string, string>;
  readonly tokenizerClass: string | undefined;
}

export function isJsonObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A special token given as a string or as an AddedToken dict (`{ content, ... }`, optionally `__type`). */
export function tokenContent(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (isJsonObject(v) && typeof v['content'] === 'string') return v['content'];
  return undefined;
}

function side(v: unknown, what: string): Side {
  if (v === undefined || v === null) return 'right';
  if (v === 'left' || v === 'right') return v;
  throw new TokenizerError(`${what} must be "left" or "right", got ${JSON.stringify(v)}.`);
}

function chatTemplates(config: JsonObject, jinja: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  const raw = config['chat_template'];
  if (typeof raw === 'string') out.set('default', raw);
  else if (Array.isArray(raw)) {
    for (const t of raw) if (isJsonObject(t) && typeof t['name'] === 'string' && typeof t['template'] === 'string') out.set(t['name'], t['template']);
  } else if (isJsonObject(raw)) {
    for (const [name, t] of Object.entries(raw)) if (typeof t === 'string') out.set(name, t);
  }
  if (jinja !== undefined) out.set('default', jinja);
  return out;
}

/** transformers stores "no limit" as int(1e30); anything that large means unbounded. */
const VERY_LARGE = 1e20;

export function readSettings(source: TokenizerSource): TokenizerSettings {
  // special_tokens_map.json overrides tokenizer_config.json, as in transformers' from_pretrained.
  const config: JsonObject = { ...(source.tokenizerConfig ?? {}), ...(source.specialTokensMap ?? {}) };
  const specialTokens: Partial<Record<SpecialTokenKey, string>> = {};
  for (const key of SPECIAL_TOKEN_KEYS) {
    const token = tokenContent(config[`${key}_token`]);
    if (token !== undefined) specialTokens[key] = token;
  }
  // A pad token configured only in tokenizer.json's padding section still counts.
  const padding = source.tokenizerJson['padding'];
  if (specialTokens.pad === undefined && isJsonObject(padding) && typeof padding['pad_token'] === 'string') {
    specialTokens.pad = padding['pad_token'];
  }
  const extra = config['additional_special_tokens'];
  const additionalSpecialTokens = Array.isArray(extra) ? extra.map(tokenContent).filter((t): t is string => t !== undefined) : [];
  const maxLen = config['model_max_length'];
  return {
    specialTokens,
    additionalSpecialTokens,
    paddingSide: side(config['padding_side'], 'padding_side'),
    truncationSide: side(config['truncation_side'], 'truncation_side'),
    modelMaxLength: typeof maxLen === 'number' && maxLen > 0 && maxLen < VERY_LARGE ? maxLen : Number.POSITIVE_INFINITY,
    cleanUpTokenizationSpaces: config['clean_up_tokenization_spaces'] === true,
    chatTemplates: chatTemplates(config, source.chatTemplate),
    tokenizerClass: typeof config['tokenizer_class'] === 'string' ? config['tokenizer_class'] : undefined,
  };
}

/** Special tokens placed around one sequence (`prefix A suffix`) or a pair (`prefix A middle B suffix`). */
export interface SpecialLayout {
  readonly prefix: readonly string[];
  readonly middle: readonly string[];
  readonly suffix: readonly string[];
}

export const NO_SPECIALS: SpecialLayout = { prefix: [], middle: [], suffix: [] };

export function layoutSize(l: SpecialLayout): number {
  return l.prefix.length + l.middle.length + l.suffix.length;
}

/** Splits a TemplateProcessing template (`single` or `pair`) around its `$A` / `$B` sequence items. */
function templateLayout(template: unknown, specials: JsonObject): SpecialLayout {
  const parts: string[][] = [[]];
  for (const item of Array.isArray(template) ? template : []) {
    if (!isJsonObject(item)) continue;
    if (isJsonObject(item['Sequence'])) parts.push([]);
    else if (isJsonObject(item['SpecialToken'])) {
      const id = String(item['SpecialToken']['id']);
      const entry = specials[id];
      const tokens = isJsonObject(entry) && Array.isArray(entry['tokens']) ? entry['tokens'].map(String) : [id];
      parts[parts.length - 1]!.push(...tokens);
    }
  }
  if (parts.length === 2) return { prefix: parts[0]!, middle: [], suffix: parts[1]! };
  if (parts.length === 3) return { prefix: parts[0]!, middle: parts[1]!, suffix: parts[2]! };
  throw new TokenizerError(`Unsupported TemplateProcessing template: ${JSON.stringify(template)}.`);
}

function tokenOf(pair: unknown): string {
  if (Array.isArray(pair) && typeof pair[0] === 'string') return pair[0];
  throw new TokenizerError(`Malformed post_processor special token ${JSON.stringify(pair)}.`);
}

/** The layout the fast tokenizer's post_processor adds, for single sequences or pairs. */
export function postProcessorLayout(pp: unknown, pair: boolean): SpecialLayout {
  if (!isJsonObject(pp)) return NO_SPECIALS;
  switch (pp['type']) {
    case 'TemplateProcessing':
      return templateLayout(pair ? pp['pair'] : pp['single'], isJsonObject(pp['special_tokens']) ? pp['special_tokens'] : {});
    case 'BertProcessing':
    case 'RobertaProcessing': {
      const cls = tokenOf(pp['cls']);
      const sep = tokenOf(pp['sep']);
      const middle = pair ? (pp['type'] === 'RobertaProcessing' ? [sep, sep] : [sep]) : [];
      return { prefix: [cls], middle, suffix: [sep] };
    }
    case 'ByteLevel':
      return NO_SPECIALS;
    case 'Sequence': {
      const inner = (Array.isArray(pp['processors']) ? pp['processors'] : [])
        .map((p) => postProcessorLayout(p, pair))
        .filter((l) => layoutSize(l) > 0);
      if (inner.length > 1) throw new TokenizerError('A post_processor Sequence with several special-token templates is not supported.');
      return inner[0] ?? NO_SPECIALS;
    }
    default:
      throw new TokenizerError(`Unsupported post_processor type ${JSON.stringify(pp['type'])} in tokenizer.json.`);
  }
}

const LLAMA_CLASSES = /^(Llama|CodeLlama|Gemma)Tokenizer(Fast)?$/;

/**
 * transformers' Llama/Gemma fast tokenizers rebuild the post_processor from `add_bos_token` / `add_eos_token`
 * (defaults true / false), so those config flags win over tokenizer.json.
 */
export function specialLayout(source: TokenizerSource, settings: TokenizerSettings, pair: boolean): SpecialLayout {
  const config = source.tokenizerConfig ?? {};
  if (!settings.tokenizerClass || !LLAMA_CLASSES.test(settings.tokenizerClass)) {
    return postProcessorLayout(source.tokenizerJson['post_processor'], pair);
  }
  const addBos = config['add_bos_token'] !== false;
  const addEos = config['add_eos_token'] === true;
  const { bos, eos } = settings.specialTokens;
  if ((addBos && bos === undefined) || (addEos && eos === undefined)) {
    throw new TokenizerError(`add_bos_token/add_eos_token is set but the tokenizer has no ${addBos && bos === undefined ? 'bos' : 'eos'}_token.`);
  }
  const before = addBos ? [bos!] : [];
  const after = addEos ? [eos!] : [];
  return { prefix: before, middle: pair ? [...after, ...before] : [], suffix: after };
}

/**
 * Glob filtering of repo file names with Python `fnmatch` semantics (what huggingface_hub's `allow_patterns`
 * uses): `*` and `?` also match `/`, so `*.safetensors` matches files in subfolders too.
 */

/** Names that appear at the top level or in a subfolder (adapters are often saved under a subfolder). */
function anyDepth(names: readonly string[]): string[] {
  return names.flatMap((n) => [n, `*/${n}`]);
}

/** Tokenizer files: fast-tokenizer JSON, its configs, chat templates and the slow-tokenizer vocab files. */
export const TOKENIZER_PATTERNS: readonly string[] = anyDepth([
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'added_tokens.json',
  'chat_template.json',
  'chat_template.jinja',
  'vocab.json',
  'vocab.txt',
  'merges.txt',
  'tokenizer.model',
  'spiece.model',
  'sentencepiece.bpe.model',
]);

/** What `resolvePretrained` fetches by default: configs, tokenizer files and safetensors weights/adapters. */
export const DEFAULT_ALLOW_PATTERNS: readonly string[] = [
  ...anyDepth(['config.json', 'generation_config.json', 'adapter_config.json', 'adapter_model.safetensors']),
  ...TOKENIZER_PATTERNS,
  '*.safetensors',
  '*.safetensors.index.json',
];

/** Formats peft-ts never reads (pickles, other frameworks): skipped even when an allow pattern matches them. */
export const DEFAULT_IGNORE_PATTERNS: readonly string[] = [
  '*.bin',
  '*.bin.index.json',
  '*.h5',
  '*.onnx',
  '*.onnx_data',
  '*.msgpack',
  '*.ckpt',
  '*.pt',
  '*.pth',
  '*.gguf',
  '*.tflite',
  '*.ot',
];

const cache = new Map<string, RegExp>();

/** Compiles an fnmatch pattern (`*`, `?`, `[seq]`, `[!seq]`) to an anchored RegExp. */
export function fnmatchToRegExp(pattern: string): RegExp {
  const hit = cache.get(pattern);
  if (hit) return hit;
  let src = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') src += '.*';
    else if (c === '?') src += '.';
    else if (c === '[') {
      const close = pattern.indexOf(']', i + 2);
      if (close < 0) {
        src += '\\[';
        continue;
      }
      let body = pattern.slice(i + 1, close);
      const negate = body.startsWith('!');
      if (negate) body = body.slice(1);
      src += `[${negate ? '^' : ''}${body.replace(/[\\\]^]/g, '\\$&')}]`;
      i = close;
    } else src += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  const re = new RegExp(`^${src}$`, 's');
  cache.set(pattern, re);
  return re;
}

/** A pattern ending in `/` means "everything under that folder", as in huggingface_hub. */
function normalize(pattern: string): string {
  return pattern.endsWith('/') ? `${pattern}*` : pattern;
}

export function matchesAny(path: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => fnmatchToRegExp(normalize(p)).test(path));
}

/** Files kept by `allow` (all when undefined) and not dropped by `ignore`. */
export function filterRepoFiles(
  files: readonly string[],
  allow: readonly string[] | undefined,
  ignore: readonly string[] | undefined,
): string[] {
  return files.filter((f) => (!allow || matchesAny(f, allow)) && !(ignore && matchesAny(f, ignore)));
}

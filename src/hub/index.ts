export { resolvePretrained, isValidRepoId } from './resolve.js';
export { resolveSettings, DEFAULT_ENDPOINT, DEFAULT_REVISION } from './options.js';
export type { HubOptions, HubSettings, DownloadProgress } from './options.js';
export { DEFAULT_ALLOW_PATTERNS, DEFAULT_IGNORE_PATTERNS, TOKENIZER_PATTERNS, filterRepoFiles, fnmatchToRegExp } from './patterns.js';

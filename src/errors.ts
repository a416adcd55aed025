/**
 * Typed errors. Every error peft-ts throws on bad input is a `PeftTsError` with a stable `code`, so callers
 * branch on `code` (or `instanceof`) rather than on message text. Messages say what was wrong and how to fix it.
 */

export type PeftTsErrorCode =
  | 'safetensors'
  | 'npy'
  | 'state_dict'
  | 'config'
  | 'backend_unavailable'
  | 'shape'
  | 'unsupported_model'
  | 'hub'
  | 'tokenizer'
  | 'generation';

export class PeftTsError extends Error {
  readonly code: PeftTsErrorCode;
  constructor(code: PeftTsErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

export type SafetensorsErrorReason =
  | 'truncated'
  | 'header_too_large'
  | 'header_invalid'
  | 'unknown_dtype'
  | 'shape_mismatch'
  | 'offsets_out_of_range'
  | 'offsets_overlap'
  | 'offsets_gap'
  | 'missing_tensor'
  | 'index_invalid'
  // appended by src/io: a value that does not fit the target dtype (I64 -> int32), and a checkpoint folder with
  // no safetensors weights in it
  | 'value_out_of_range'
  | 'not_found';

/** A safetensors file (or sharded index) that does not follow the format. */
export class SafetensorsError extends PeftTsError {
  readonly reason: SafetensorsErrorReason;
  readonly byteOffset: number | undefined;
  readonly path: string | undefined;
  constructor(
    reason: SafetensorsErrorReason,
    message: string,
    details: { byteOffset?: number; path?: string; cause?: unknown } = {},
  ) {
    super('safetensors', details.path ? `${details.path}: ${message}` : message, { cause: details.cause });
    this.reason = reason;
    this.byteOffset = details.byteOffset;
    this.path = details.path;
  }
}

/** A `.npy` file that this reader cannot decode. */
export class NpyError extends PeftTsError {
  constructor(message: string) {
    super('npy', message);
  }
}

export interface ShapeMismatch {
  readonly key: string;
  readonly expected: readonly number[];
  readonly actual: readonly number[];
}

/** `loadStateDict` found missing or unexpected keys (strict mode) or shapes that do not fit. */
export class StateDictError extends PeftTsError {
  readonly missingKeys: readonly string[];
  readonly unexpectedKeys: readonly string[];
  readonly shapeMismatches: readonly ShapeMismatch[];
  constructor(report: { missingKeys: readonly string[]; unexpectedKeys: readonly string[]; shapeMismatches: readonly ShapeMismatch[] }) {
    const parts: string[] = [];
    const list = (keys: readonly string[]) => keys.slice(0, 10).join(', ') + (keys.length > 10 ? `, ... (${keys.length} in all)` : '');
    if (report.missingKeys.length) parts.push(`missing keys: ${list(report.missingKeys)}`);
    if (report.unexpectedKeys.length) parts.push(`unexpected keys: ${list(report.unexpectedKeys)}`);
    if (report.shapeMismatches.length) {
      parts.push(
        'shape mismatches: ' +
          report.shapeMismatches
            .slice(0, 10)
            .map((m) => `${m.key} expects [${m.expected.join(', ')}] but got [${m.actual.join(', ')}]`)
            .join('; '),
      );
    }
    super(
      'state_dict',
      `Error(s) in loading state dict: ${parts.join('; ')}. Check that the checkpoint belongs to this architecture and ` +
        'config, or pass { strict: false } to load the matching keys only.',
    );
    this.missingKeys = report.missingKeys;
    this.unexpectedKeys = report.unexpectedKeys;
    this.shapeMismatches = report.shapeMismatches;
  }
}

export interface ConfigIssue {
  readonly code: 'invalid_value' | 'missing' | 'invalid_type';
  readonly path: readonly (string | number)[];
  readonly message: string;
}

/** A config (model `config.json`, adapter config, generation options) with impossible values. */
export class ConfigError extends PeftTsError {
  readonly issues: readonly ConfigIssue[];
  constructor(issues: readonly ConfigIssue[], what = 'config') {
    super('config', `Invalid ${what}: ${issues.map((i) => `${i.path.join('.') || '<root>'}: ${i.message}`).join('; ')}`);
    this.issues = issues;
  }
}

/** A requested compute backend cannot be used here. */
export class BackendUnavailableError extends PeftTsError {
  readonly backend: string;
  constructor(backend: string, message: string, options?: { cause?: unknown }) {
    super('backend_unavailable', message, options);
    this.backend = backend;
  }
}

/** Tensor shapes that cannot work together (inputs, weights, masks). */
export class ShapeError extends PeftTsError {
  constructor(message: string) {
    super('shape', message);
  }
}

/** `model_type` (or architecture) that peft-ts has no implementation for. */
export class UnsupportedModelError extends PeftTsError {
  readonly modelType: string;
  readonly supported: readonly string[];
  constructor(modelType: string, supported: readonly string[]) {
    super(
      'unsupported_model',
      `model_type "${modelType}" is not supported. Supported model types: ${supported.join(', ')}.`,
    );
    this.modelType = modelType;
    this.supported = supported;
  }
}

/** Downloading from or resolving against the Hugging Face hub failed. */
export class HubError extends PeftTsError {
  readonly repoId: string;
  readonly status: number | undefined;
  constructor(repoId: string, message: string, details: { status?: number; cause?: unknown } = {}) {
    super('hub', message, { cause: details.cause });
    this.repoId = repoId;
    this.status = details.status;
  }
}

/** A tokenizer folder that cannot be loaded or an encode/decode request that cannot be served. */
export class TokenizerError extends PeftTsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('tokenizer', message, options);
  }
}

/** Generation options that cannot be honoured. */
export class GenerationError extends PeftTsError {
  constructor(message: string) {
    super('generation', message);
  }
}

/** Offline (`HF_HUB_OFFLINE`, `localFilesOnly`) and the requested repo files are not in the local cache. */
export class HubNotCachedError extends HubError {
  /** Files known to be missing from the cached snapshot (empty when no snapshot of the revision is cached at all). */
  readonly missingFiles: readonly string[];
  constructor(repoId: string, message: string, missingFiles: readonly string[] = []) {
    super(repoId, message);
    this.missingFiles = missingFiles;
  }
}

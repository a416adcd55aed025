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
  | 'generation'
  | 'no_matching_module'
  | 'unsupported_layer'
  | 'adapter_name'
  | 'adapter_load'
  | 'merge'
  // appended by src/tuners/xlora
  | 'scalings_log'
  // appended by src/viz
  | 'viz'
  // appended by src/training
  | 'data'
  | 'training';

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
  // appended by src/tuners: a value PEFT accepts but peft-ts cannot honour, and an option name the config lacks
  readonly code: 'invalid_value' | 'missing' | 'invalid_type' | 'unsupported' | 'unrecognized_key';
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

/** A layer kind the tuner has no adapter layer for (e.g. LoHa on GPT-2's Conv1D). */
export class UnsupportedLayerError extends PeftTsError {
  readonly kind: string;
  readonly supported: readonly string[];
  readonly moduleName: string;
  constructor(moduleName: string, kind: string, supported: readonly string[], method: string) {
    super(
      'unsupported_layer',
      `Target module ${moduleName} (${kind}) is not supported by ${method}. Currently, only the following layer kinds are supported: ${supported.join(', ')}. ` +
        'Change targetModules so it selects only supported layers.',
    );
    this.kind = kind;
    this.supported = supported;
    this.moduleName = moduleName;
  }
}

/** An adapter name that cannot be used (empty, a path, or already taken). */
export class AdapterNameError extends PeftTsError {
  readonly adapterName: string;
  constructor(adapterName: string, reason: string) {
    super('adapter_name', `Invalid adapter name ${JSON.stringify(adapterName)}: ${reason}`);
    this.adapterName = adapterName;
  }
}

/** Adapter weights that do not fit the model (shapes, or a file that is not an adapter of this kind). */
export class AdapterLoadError extends PeftTsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('adapter_load', message, options);
  }
}

/** Merging or unmerging cannot proceed (non-finite result, merged adapter deleted, unsupported layer). */
export class MergeError extends PeftTsError {
  constructor(message: string) {
    super('merge', message);
  }
}

export type NoMatchingModuleReason = 'not_found' | 'all_excluded' | 'excluded_or_not_found' | 'no_target_modules';

/**
 * The adapter's `targetModules` matched no module of the model (PEFT's `NoMatchingPeftModuleError`). Raised before
 * the model is touched. `reason` tells the cases apart: nothing matched, everything that matched was excluded
 * (`excludeModules`, or a `modulesToSave` module), a mix of both, or an empty `targetModules`.
 */
export class NoMatchingModuleError extends PeftTsError {
  readonly reason: NoMatchingModuleReason;
  /** `targetModules` after defaults, `all-linear` expansion and condensation. */
  readonly targetModules: string | readonly string[];
  /** A few module names of the model (adaptable layers first), to show what names look like. */
  readonly sampleNames: readonly string[];
  constructor(details: {
    reason: NoMatchingModuleReason;
    targetModules: string | readonly string[];
    layersToTransform: number | readonly number[] | null;
    layersPattern: string | readonly string[] | null;
    sampleNames: readonly string[];
  }) {
    const quoted = JSON.stringify(details.targetModules);
    let message: string;
    switch (details.reason) {
      case 'all_excluded':
        message =
          'All modules were excluded. This is likely unintended. Check your targetModules, excludeModules and ' +
          'modulesToSave configuration (an adapter never goes on a modules_to_save module).';
        break;
      case 'no_target_modules':
        message = 'No targetModules passed (target_modules is empty). Pass module name suffixes such as ["q_proj", "v_proj"], a regex, or "all-linear".';
        break;
      case 'excluded_or_not_found':
        message =
          `No modules were targeted for adaptation: target_modules=${quoted} matched only modules that excludeModules ` +
          'or modulesToSave rule out. Check your targetModules and excludeModules configuration.';
        break;
      case 'not_found':
        message =
          `Target modules ${quoted} not found in the base model. A list entry matches a module whose full name equals ` +
          'it or ends with "." + entry; a string is a regex that must match the whole name.';
        break;
    }
    if (details.layersToTransform !== null) message += ` Note: You specified layers_to_transform=${JSON.stringify(details.layersToTransform)}.`;
    if (details.layersPattern !== null) message += ` You also specified layers_pattern=${JSON.stringify(details.layersPattern)}.`;
    if (details.sampleNames.length > 0) message += ` Module names in this model look like: ${details.sampleNames.join(', ')}.`;
    super('no_matching_module', message);
    this.reason = details.reason;
    this.targetModules = details.targetModules;
    this.sampleNames = details.sampleNames;
  }
}

export type ScalingsLogErrorReason = 'disabled' | 'empty' | 'shape' | 'not_found' | 'invalid';

/**
 * X-LoRA's scalings log cannot be flushed (logging disabled, empty log, entries whose shapes cannot be stacked) or
 * a flushed log cannot be read back (files missing, a mapping file that does not fit its arrays).
 */
export class ScalingsLogError extends PeftTsError {
  readonly reason: ScalingsLogErrorReason;
  readonly path: string | undefined;
  constructor(reason: ScalingsLogErrorReason, message: string, details: { path?: string; cause?: unknown } = {}) {
    super('scalings_log', message, { cause: details.cause });
    this.reason = reason;
    this.path = details.path;
  }
}

// appended by src/viz
export type VizErrorReason = 'input' | 'metrics' | 'renderer_unavailable' | 'format';

/**
 * A picture cannot be drawn: scalings whose shape does not fit the labels, a metrics file that is not JSON lines
 * with a numeric `step`, the PNG renderer's native package missing for this platform, an output extension other
 * than `.svg` / `.png`.
 */
export class VizError extends PeftTsError {
  readonly reason: VizErrorReason;
  readonly path: string | undefined;
  constructor(reason: VizErrorReason, message: string, details: { path?: string; cause?: unknown } = {}) {
    super('viz', details.path ? `${details.path}: ${message}` : message, { cause: details.cause });
    this.reason = reason;
    this.path = details.path;
  }
}

/** One bad record of a training data file: where it is (1-based line) and what is wrong with it. */
export interface DataProblem {
  readonly path: string;
  readonly line: number;
  readonly message: string;
}

/** Training data that cannot be used: bad JSONL lines (when they are fatal), an empty data set, a missing file. */
export class DataError extends PeftTsError {
  readonly problems: readonly DataProblem[];
  constructor(message: string, problems: readonly DataProblem[] = [], options?: { cause?: unknown }) {
    const shown = problems.slice(0, 5).map((p) => `${p.path}:${p.line}: ${p.message}`);
    const more = problems.length > 5 ? ` (and ${problems.length - 5} more)` : '';
    super('data', shown.length ? `${message}\n${shown.join('\n')}${more}` : message, options);
    this.problems = problems;
  }
}

/** Training cannot proceed or resume: bad trainer options, a checkpoint that does not fit the model, a non-finite loss. */
export class TrainingError extends PeftTsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('training', message, options);
  }
}

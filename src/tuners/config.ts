/**
 * Adapter configs: the registry of config classes by `peft_type`, and reading/writing `adapter_config.json`.
 * The codec machinery is in `config-schema.ts` and re-exported here, so `config.ts` is the one import for config
 * types; the method configs are in `lora/config.ts` and `loha/config.ts`.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { LoHaConfig } from './loha/config.js';
import { LoraConfig } from './lora/config.js';
import { XLoraConfig } from './xlora/config.js';
import type { ConfigSettings, PeftType } from './config-schema.js';

export {
  TASK_TYPES,
  PEFT_FORMAT_VERSION,
  PEFT_TS_VERSION,
  WRITER_PEFT_VERSION,
  consoleWarn,
  defineConfig,
  field,
  p,
  INVALID,
  EMPTY_OBJECT,
  peftConfigFields,
  tunerFields,
  refineTunerFields,
} from './config-schema.js';
export { formatPythonJson, pythonFloatRepr } from './python-json.js';
export type {
  PeftType,
  TaskType,
  JsonValue,
  JsonObject,
  Warn,
  FieldIssue,
  Report,
  Parser,
  Field,
  Schema,
  FieldValues,
  ConfigOptions,
  Mutable,
  RefineContext,
  ConfigDefinition,
  ConfigSettings,
  PeftConfigMethods,
  ConfigInstance,
  ConfigClass,
} from './config-schema.js';

/** The file PEFT reads and writes in an adapter folder. */
export const ADAPTER_CONFIG_NAME = 'adapter_config.json';

/**
 * Config classes by `peft_type`. Extension point: X-LoRA adds `XLORA: XLoraConfig` here and to {@link PeftConfig}.
 */
export const configClasses = {
  LORA: LoraConfig,
  LOHA: LoHaConfig,
  XLORA: XLoraConfig,
} as const satisfies { readonly [P in PeftType]?: { readonly peftType: P } };

/** Any adapter config peft-ts can read. */
export type PeftConfig = LoraConfig | LoHaConfig | XLoraConfig;

/** PEFT 0.21.2's other methods, to tell "not implemented here" from "not a PEFT method" in messages. */
const OTHER_PEFT_TYPES = new Set([
  'PROMPT_TUNING', 'MULTITASK_PROMPT_TUNING', 'P_TUNING', 'PREFIX_TUNING', 'ADALORA', 'ADAMSS', 'BOFT', 'ADAPTION_PROMPT', 'IA3',
  'BEFT', 'LILY', 'LOKR', 'OFT', 'POLY', 'LN_TUNING', 'VERA', 'FROD', 'PVERA', 'FOURIERFT', 'GLORA', 'HRA', 'VBLORA', 'UNILORA',
  'CPT', 'MISS', 'RANDLORA', 'ROAD', 'TRAINABLE_TOKENS', 'HIRA', 'SHIRA', 'C3A', 'WAVEFT', 'OSF', 'DELORA', 'GRALORA', 'CARTRIDGE',
  'TINYLORA', 'PSOFT', 'PEANUT', 'SHADOW', 'SUPERTUNING', 'DEFT',
]);

/**
 * Reads an `adapter_config.json` object into the config class its `peft_type` names. A missing or unsupported
 * `peft_type` is a `ConfigError` naming the supported ones.
 */
export function parsePeftConfig(raw: unknown, settings: ConfigSettings = {}): PeftConfig {
  const what = settings.source ? `adapter config (${settings.source})` : 'adapter config';
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError([{ code: 'invalid_type', path: [], message: 'must be a JSON object' }], what);
  }
  const supported = Object.keys(configClasses).join(', ');
  const peftType = (raw as Record<string, unknown>)['peft_type'];
  if (peftType === undefined || peftType === null) {
    throw new ConfigError([{ code: 'missing', path: ['peft_type'], message: `is required (supported: ${supported})` }], what);
  }
  if (typeof peftType !== 'string' || !Object.hasOwn(configClasses, peftType)) {
    const message =
      typeof peftType === 'string' && (OTHER_PEFT_TYPES.has(peftType) || peftType === 'XLORA')
        ? `"${peftType}" is a PEFT method that peft-ts does not implement; supported: ${supported}`
        : `must be one of ${supported}, got ${JSON.stringify(peftType)}`;
    throw new ConfigError([{ code: 'unsupported', path: ['peft_type'], message }], what);
  }
  const cls = configClasses[peftType as keyof typeof configClasses];
  return cls.fromJson(raw, settings) as PeftConfig;
}

/** Reads `<dir>/adapter_config.json`. A missing or unparseable file is a `ConfigError`. */
export async function loadPeftConfig(dir: string, settings: ConfigSettings = {}): Promise<PeftConfig> {
  const file = join(dir, ADAPTER_CONFIG_NAME);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const message = code === 'ENOENT' ? `${ADAPTER_CONFIG_NAME} not found in ${dir}; is this a PEFT adapter folder?` : `cannot be read: ${(e as Error).message}`;
    throw new ConfigError([{ code: 'missing', path: [], message }], file);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError([{ code: 'invalid_type', path: [], message: `is not valid JSON: ${(e as Error).message}` }], file);
  }
  return parsePeftConfig(raw, { ...settings, source: settings.source ?? file });
}

/**
 * Writes `<dir>/adapter_config.json` atomically (creating `dir`), formatted as PEFT's
 * `json.dumps(indent=2, sort_keys=True)` (no trailing newline). The config is written as is: callers saving a
 * model set `inferenceMode: true` and `baseModelNameOrPath` first, as `PeftModel.save_pretrained` does.
 */
export async function savePeftConfig(dir: string, config: PeftConfig): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFileAtomic(join(dir, ADAPTER_CONFIG_NAME), config.toJsonString());
}

/**
 * `LoraConfig`: every field of PEFT 0.21.2's `LoraConfig` (`tuners/lora/config.py`), with its defaults and
 * `__post_init__` checks. Plain LoRA, rsLoRA, DoRA and `lora_bias` are implemented; the exotic variants and
 * initialisations are accepted at their defaults, round-tripped, and rejected with a `ConfigError` (issue code
 * `unsupported`) when set to something peft-ts cannot honour.
 */
import { defineConfig, EMPTY_OBJECT, field, INVALID, p, peftConfigFields, refineTunerFields, tunerFields } from '../config-schema.js';
import type { FieldValues, JsonObject, Mutable, Parser, RefineContext } from '../config-schema.js';

/** `init_lora_weights` values peft-ts implements: PEFT's default (B = 0), random non-identity, or Gaussian A. */
export type LoraInit = boolean | 'gaussian';

/** PEFT's other `init_lora_weights` strings (data-driven or base-weight-rewriting initialisations). */
const UNSUPPORTED_INITS = ['eva', 'olora', 'pissa', 'corda', 'loftq', 'orthogonal', 'mica', 'lora_ga'] as const;

const initLoraWeights: Parser<LoraInit> = (value, report) => {
  if (value === true || value === false || value === 'gaussian') return value;
  if (typeof value === 'string' && ((UNSUPPORTED_INITS as readonly string[]).includes(value) || /^pissa_niter_\d+$/.test(value))) {
    report({ code: 'unsupported', message: `"${value}" initialisation is not supported by peft-ts; use true, false or "gaussian".` });
  } else {
    report({ code: 'invalid_value', message: `must be true, false or "gaussian", got ${JSON.stringify(value) ?? String(value)}` });
  }
  return INVALID;
};

const nullableObject = p.nullable(p.jsonObject);

/** The field table, in PEFT's dataclass order (`runtime_config` is never saved, and ignored when read). */
export const loraFields = {
  ...peftConfigFields,
  r: field('r', 8, p.integer({ min: 1 })),
  targetModules: tunerFields.targetModules,
  excludeModules: tunerFields.excludeModules,
  loraAlpha: field('lora_alpha', 8, p.number()),
  loraDropout: field('lora_dropout', 0, p.number({ min: 0, max: 1, maxExclusive: true }), { float: true }),
  fanInFanOut: field('fan_in_fan_out', false, p.boolean),
  bias: field('bias', 'none', p.oneOf(['none', 'all', 'lora_only'])),
  useRslora: field('use_rslora', false, p.boolean),
  modulesToSave: tunerFields.modulesToSave,
  initLoraWeights: field('init_lora_weights', true as LoraInit, initLoraWeights),
  layersToTransform: tunerFields.layersToTransform,
  layersPattern: tunerFields.layersPattern,
  rankPattern: tunerFields.rankPattern,
  alphaPattern: tunerFields.alphaPattern,
  /** Megatron's TransformerConfig: PEFT uses it only for Megatron parallel layers, which no peft-ts model has. */
  megatronConfig: field('megatron_config', null, nullableObject),
  megatronCore: field('megatron_core', 'megatron.core' as string | null, p.nullable(p.string)),
  trainableTokenIndices: field('trainable_token_indices', null, p.nullable(p.json)),
  loftqConfig: field('loftq_config', EMPTY_OBJECT as JsonObject, p.jsonObject, { nullMeansDefault: true }),
  evaConfig: field('eva_config', null, nullableObject),
  cordaConfig: field('corda_config', null, nullableObject),
  loraGaConfig: field('lora_ga_config', null, nullableObject),
  useDora: field('use_dora', false, p.boolean),
  veloraConfig: field('velora_config', null, nullableObject),
  aloraInvocationTokens: field('alora_invocation_tokens', null, p.nullable(p.integerList())),
  useQalora: field('use_qalora', false, p.boolean),
  qaloraGroupSize: field('qalora_group_size', 16, p.integer({ min: 1 })),
  montecloraConfig: field('monteclora_config', null, nullableObject),
  layerReplication: field('layer_replication', null, p.nullable(p.json)),
  loraBias: field('lora_bias', false, p.boolean),
  targetParameters: field('target_parameters', null, p.nullable(p.stringList)),
  useBdlora: field('use_bdlora', null, nullableObject),
  arrowConfig: field('arrow_config', null, nullableObject),
  kasaConfig: field('kasa_config', null, nullableObject),
  /** Tie the adapters of tied layers (embed_tokens / lm_head); the tuner must honour or reject `true`. */
  ensureWeightTying: field('ensure_weight_tying', false, p.boolean),
} as const;

export type LoraFields = typeof loraFields;

type Values = Mutable<FieldValues<LoraFields>>;

/**
 * Options peft-ts cannot honour when set: [field, is it set?, what it is]. Each gives an `unsupported` issue, so a
 * file that uses one fails loudly instead of loading as a different adapter.
 */
const UNSUPPORTED_OPTIONS: readonly (readonly [keyof LoraFields & string, (v: Values) => boolean, string])[] = [
  ['layerReplication', (v) => v.layerReplication !== null, 'layer replication'],
  ['targetParameters', (v) => v.targetParameters !== null && v.targetParameters.length > 0, 'LoRA on parameters (target_parameters)'],
  ['trainableTokenIndices', (v) => v.trainableTokenIndices !== null, 'trainable tokens'],
  ['useQalora', (v) => v.useQalora, 'QALoRA'],
  ['veloraConfig', (v) => v.veloraConfig !== null, 'VeLoRA'],
  ['aloraInvocationTokens', (v) => v.aloraInvocationTokens !== null, 'Activated LoRA (aLoRA)'],
  ['montecloraConfig', (v) => v.montecloraConfig !== null, 'MonteCLoRA'],
  ['useBdlora', (v) => v.useBdlora !== null, 'block-diagonal LoRA (BD-LoRA)'],
  ['arrowConfig', (v) => v.arrowConfig !== null, 'Arrow routing'],
  ['kasaConfig', (v) => v.kasaConfig !== null, 'KaSA'],
];

/** `LoraConfig.__post_init__` (0.21.2), minus what only matters for Python (scipy, Megatron imports). */
function refineLora(v: Values, ctx: RefineContext<LoraFields>): void {
  refineTunerFields(v, ctx, { stringTargetsWithLayers: 'error' });
  if (v.useDora && v.megatronConfig !== null && Object.keys(v.megatronConfig).length > 0) {
    ctx.issue('useDora', 'invalid_value', `DoRA does not support Megatron; set ${ctx.name('useDora')} to false.`);
  }
  if (v.loraBias) {
    if (v.initLoraWeights !== true && v.initLoraWeights !== false) {
      ctx.issue('loraBias', 'invalid_value', `is only supported with ${ctx.name('initLoraWeights')} true or false, got ${JSON.stringify(v.initLoraWeights)}.`);
    }
    if (v.useDora) ctx.issue('loraBias', 'invalid_value', `is not supported for DoRA; set ${ctx.name('useDora')} to false.`);
  }
  // PEFT drops a loftq_config when init_lora_weights is not "loftq" (and "loftq" itself is unsupported here).
  if (Object.keys(v.loftqConfig).length > 0) {
    ctx.warn(`${ctx.name('loftqConfig')} specified but will be ignored when ${ctx.name('initLoraWeights')} is not "loftq".`);
    v.loftqConfig = EMPTY_OBJECT;
  }
  for (const [n, method] of [['evaConfig', 'eva'], ['cordaConfig', 'corda'], ['loraGaConfig', 'lora_ga']] as const) {
    if (v[n] !== null) ctx.warn(`${ctx.name(n)} specified but will be ignored when ${ctx.name('initLoraWeights')} is not "${method}".`);
  }
  for (const [n, isSet, what] of UNSUPPORTED_OPTIONS) {
    if (isSet(v)) ctx.issue(n, 'unsupported', `${what} is not supported by peft-ts; leave ${ctx.name(n)} at its default (${JSON.stringify(loraFields[n].default)}).`);
  }
}

/**
 * PEFT's `LoraConfig`. Options are camelCase (`new LoraConfig({ r: 16, loraAlpha: 32, targetModules: ['q_proj',
 * 'v_proj'] })`); `LoraConfig.fromJson(json)` reads an `adapter_config.json` object.
 */
export class LoraConfig extends defineConfig({ peftType: 'LORA', what: 'LoraConfig', fields: loraFields, refine: refineLora }) {
  /** A copy whose adapters start as non-identity (random A and B), for tests that must be able to fail. */
  nonIdentityInit(): LoraConfig {
    return this.with({ initLoraWeights: false });
  }
}

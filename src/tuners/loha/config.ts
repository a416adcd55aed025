/**
 * `LoHaConfig`: PEFT 0.21.2's `LoHaConfig` (`tuners/loha/config.py`, rank/alpha patterns from `LycorisConfig`),
 * with its defaults and `__post_init__` checks.
 */
import { defineConfig, field, p, peftConfigFields, refineTunerFields, tunerFields } from '../config-schema.js';
import type { FieldValues, Mutable, RefineContext } from '../config-schema.js';

/** The field table, in PEFT's dataclass order. */
export const lohaFields = {
  ...peftConfigFields,
  rankPattern: tunerFields.rankPattern,
  alphaPattern: tunerFields.alphaPattern,
  r: field('r', 8, p.integer({ min: 1 })),
  /** The scaling numerator (`alpha / r`); note it is `alpha`, not LoRA's `lora_alpha`. */
  alpha: field('alpha', 8, p.number()),
  /** Probability of dropping each output row of the delta during training (rescaled by the kept fraction). */
  rankDropout: field('rank_dropout', 0, p.number({ min: 0, max: 1, maxExclusive: true }), { float: true }),
  /** Probability of skipping the whole adapter for a training step. */
  moduleDropout: field('module_dropout', 0, p.number({ min: 0, max: 1 }), { float: true }),
  /** FedPara "Proposition 3" (Tucker) form for Conv2d/Conv1d with kernel > 1. */
  useEffectiveConv2d: field('use_effective_conv2d', false, p.boolean),
  targetModules: tunerFields.targetModules,
  excludeModules: tunerFields.excludeModules,
  /** `true`: the delta starts at zero; `false`: random non-identity init (tests). */
  initWeights: field('init_weights', true, p.boolean),
  layersToTransform: tunerFields.layersToTransform,
  layersPattern: tunerFields.layersPattern,
  modulesToSave: tunerFields.modulesToSave,
} as const;

export type LoHaFields = typeof lohaFields;

function refineLoha(v: Mutable<FieldValues<LoHaFields>>, ctx: RefineContext<LoHaFields>): void {
  // Unlike LoRA, PEFT's LoHa does not reject layers_to_transform/layers_pattern next to a regex target_modules; the
  // regex branch just never looks at them.
  refineTunerFields(v, ctx, { stringTargetsWithLayers: 'warn' });
}

/** PEFT's `LoHaConfig` (Low-Rank Hadamard Product). */
export class LoHaConfig extends defineConfig({ peftType: 'LOHA', what: 'LoHaConfig', fields: lohaFields, refine: refineLoha }) {
  /** A copy whose adapters start as non-identity, for tests that must be able to fail. */
  nonIdentityInit(): LoHaConfig {
    return this.with({ initWeights: false });
  }
}

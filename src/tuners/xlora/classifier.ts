import { tf } from '../../engine/tf.js';
import { ReLU } from '../../nn/activations.js';
import { Sequential } from '../../nn/container.js';
import { Dropout } from '../../nn/dropout.js';
import { Linear } from '../../nn/linear.js';
import { Module } from '../../nn/module.js';
import type { Layer } from '../../nn/module.js';

/** What the classifier's shape depends on. */
export interface XLoraClassifierSpec {
  hiddenSize: number;
  numExperts: number;
  /** L: LoRA-wrapped layers of the model. */
  numLayers: number;
  depth: number;
  /** Z: hidden width for depth >= 2. */
  size: number;
  layerwise: boolean;
  enableSoftmax: boolean;
  temperature: number;
  dropoutP: number;
  useBias: boolean;
  /**
   * 'peft': PEFT's port (ReLU always between Linears, Dropout only if p > 0, bias on).
   * 'original': the xlora package (ReLU and Dropout(p) both, or neither, per `enable_relu_and_dropout`).
   */
  layout: 'peft' | 'original';
  reluAndDropout: boolean;
  seed?: number | undefined;
}

/**
 * The X-LoRA scaling head (spec §3): an MLP over the scaling pass's last hidden state, predicting per token a
 * weight for every (LoRA layer, expert). Held as `layers` (PEFT's Sequential), so PEFT's keys
 * `internal_xlora_classifier.layers.N.*` are its state-dict keys; the original's `inner.N`/`last` map onto it.
 */
export class XLoraClassifier extends Module {
  layers: Sequential;

  constructor(readonly spec: XLoraClassifierSpec) {
    super();
    const { hiddenSize: h, size: z, depth } = spec;
    const out = spec.layerwise ? spec.numExperts * spec.numLayers : spec.numExperts;
    let seed = spec.seed;
    const linear = (a: number, b: number) => new Linear(a, b, { bias: spec.useBias, ...(seed === undefined ? {} : { seed: seed++ }) });
    // Seeded masks too when a seed is given, so training runs repeat.
    const dropout = () => new Dropout(spec.dropoutP, seed === undefined ? {} : { seed: seed++ });
    const blocks: Layer[] = [];
    const activation = () => {
      if (spec.layout === 'peft') {
        blocks.push(new ReLU());
        if (spec.dropoutP > 0) blocks.push(dropout());
      } else if (spec.reluAndDropout) {
        blocks.push(new ReLU(), dropout());
      }
    };
    if (depth === 1) {
      blocks.push(linear(h, out));
    } else {
      blocks.push(linear(h, z));
      activation();
      for (let i = 0; i < depth - 2; i++) {
        blocks.push(linear(z, z));
        activation();
      }
      blocks.push(linear(z, out));
    }
    this.layers = this.registerModule('layers', new Sequential(...blocks));
  }

  /** Index of each Linear in `layers`, in order (the original's `inner.N` indices, `last` at the end). */
  linearIndices(): number[] {
    return [...this.layers].flatMap((m, i) => (m instanceof Linear ? [i] : []));
  }

  /** `[B, S, H]` hidden states -> `[B, S, L, C]` scalings (post-softmax, before any top-k). */
  forward(hidden: tf.Tensor3D): tf.Tensor4D {
    return tf.tidy(() => {
      const [batch, seq] = hidden.shape;
      const { numLayers: l, numExperts: c } = this.spec;
      const logits = this.layers.forward(hidden);
      let scalings: tf.Tensor4D = this.spec.layerwise
        ? tf.reshape(logits, [batch, seq, l, c])
        : tf.tile(tf.reshape(logits, [batch, seq, 1, c]), [1, 1, l, 1]);
      if (this.spec.enableSoftmax) scalings = tf.softmax(tf.div(scalings, this.spec.temperature), -1) as tf.Tensor4D;
      return scalings;
    });
  }
}

/**
 * Renames an original-format classifier state dict (`inner.N.*`, `last.*`) to `layers.N.*`: `inner.k` keeps
 * its index and `last` follows the inner modules.
 */
export function originalClassifierKeys(classifier: XLoraClassifier, tensors: Map<string, tf.Tensor>): Map<string, tf.Tensor> {
  const lastIndex = classifier.linearIndices().at(-1)!;
  const out = new Map<string, tf.Tensor>();
  for (const [key, value] of tensors) {
    const inner = /^inner\.(\d+)\.(weight|bias)$/.exec(key);
    const last = /^last\.(weight|bias)$/.exec(key);
    if (inner) out.set(`layers.${inner[1]}.${inner[2]}`, value);
    else if (last) out.set(`layers.${lastIndex}.${last[1]}`, value);
    else out.set(key, value);
  }
  return out;
}

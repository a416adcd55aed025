import type { tf } from '../engine/tf.js';
import type { ForwardContext } from '../nn/context.js';
import { ModuleDict } from '../nn/dicts.js';
import { Module } from '../nn/module.js';
import type { Layer } from '../nn/module.js';

/**
 * PEFT's `ModulesToSaveWrapper`: the frozen original plus one trainable copy per adapter (a task head such as
 * `classifier`), saved in full with the adapter. The active adapter's copy runs; the original runs when no
 * adapter uses the wrapper or adapters are disabled.
 */
export class ModulesToSaveWrapper extends Module implements Layer {
  original_module: Layer;
  modules_to_save: ModuleDict<Layer>;
  activeAdapter: string | null = null;
  disabled = false;

  constructor(original: Layer, adapterName: string) {
    super();
    this.original_module = this.registerModule('original_module', original);
    this.modules_to_save = this.registerModule('modules_to_save', new ModuleDict<Layer>());
    this.original_module.requiresGrad(false);
    this.addAdapter(adapterName);
  }

  /** Adds a trainable copy of the original for `name` (PEFT deep-copies the module). */
  addAdapter(name: string): void {
    if (!this.modules_to_save.has(name)) this.modules_to_save.set(name, this.original_module.clone().requiresGrad(true));
    this.activeAdapter ??= name;
  }

  setAdapter(names: readonly string[], { trainable = true } = {}): void {
    const mine = names.filter((n) => this.modules_to_save.has(n));
    this.activeAdapter = mine[0] ?? null;
    for (const key of this.modules_to_save.keys()) this.modules_to_save.get(key)!.requiresGrad(trainable && key === this.activeAdapter);
  }

  deleteAdapter(name: string): void {
    if (!this.modules_to_save.has(name)) return;
    this.modules_to_save.delete(name);
    if (this.activeAdapter === name) this.activeAdapter = this.modules_to_save.keys()[0] ?? null;
  }

  /** The module that runs now. */
  get current(): Layer {
    if (this.disabled || this.activeAdapter === null) return this.original_module;
    return this.modules_to_save.get(this.activeAdapter)!;
  }

  forward(x: tf.Tensor, ctx?: ForwardContext): tf.Tensor {
    return this.current.forward(x, ctx);
  }
}

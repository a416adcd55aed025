import type { tf } from '../engine/tf.js';
import { Module } from './module.js';
import type { Parameter } from './module.js';

/** Modules keyed by name, as PyTorch's `nn.ModuleDict` (adapters keep one entry per adapter name). */
export class ModuleDict<T extends Module = Module> extends Module {
  private readonly entries = new Map<string, T>();

  set(name: string, module: T): T {
    if (this.entries.has(name)) this.delete(name);
    this.entries.set(name, this.registerModule(name, module));
    return module;
  }

  get(name: string): T | undefined {
    return this.entries.get(name);
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** Removes and frees the entry. */
  delete(name: string): void {
    this.entries.get(name)?.dispose();
    this.entries.delete(name);
    this.removeChild(name);
  }

  keys(): string[] {
    return [...this.entries.keys()];
  }

  protected override replaceChild(name: string, module: Module): void {
    super.replaceChild(name, module);
    this.entries.set(name, module as T);
  }
}

/** Parameters keyed by name, as PyTorch's `nn.ParameterDict`: state-dict keys end in `.<name>`. */
export class ParameterDict extends Module {
  private readonly entries = new Map<string, Parameter>();

  /** Registers `value` under `name` (taking ownership of a plain tensor). */
  set(name: string, value: tf.Tensor | Parameter, options: { requiresGrad?: boolean } = {}): Parameter {
    if (this.entries.has(name)) this.delete(name);
    const param = this.registerParameter(name, value, options);
    this.entries.set(name, param);
    return param;
  }

  get(name: string): Parameter | undefined {
    return this.entries.get(name);
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  delete(name: string): void {
    this.entries.delete(name);
    this.removeParameter(name);
  }

  keys(): string[] {
    return [...this.entries.keys()];
  }
}

import { tf } from '../engine/tf.js';
import { ShapeError, StateDictError } from '../errors.js';
import type { ShapeMismatch } from '../errors.js';
import type { ForwardContext } from './context.js';
import type { FusedProjection } from '../engine/fused/decoder-stack.js';

/** A trainable (or frozen) weight. `trainable` is TF.js's name for PyTorch's `requires_grad`. */
export type Parameter = tf.Variable;

/** Tensors by state-dict key, in registration order. */
export type StateDict = Record<string, tf.Tensor>;

export interface LoadStateDictOptions {
  /** Throw `StateDictError` on missing or unexpected keys (default true). Shape mismatches always throw. */
  strict?: boolean;
}

export interface LoadStateDictReport {
  missingKeys: string[];
  unexpectedKeys: string[];
}

/** Layer kinds an adapter can target; every nn layer reports its own. */
export type LayerKind = 'linear' | 'embedding' | 'conv1d' | 'conv2d' | 'gpt2_conv1d';

/**
 * A PyTorch-like module: named children, parameters and buffers registered in order, so that
 * `namedModules()`, `namedParameters()` and `stateDict()` return exactly what PyTorch returns for the same
 * architecture. Children are also kept as properties named like the Python attributes (`this.c_attn`), and
 * `setSubmodule` keeps the two in step when an adapter wraps a layer.
 */
export abstract class Module {
  training = true;
  private readonly childModules = new Map<string, Module>();
  private readonly params = new Map<string, Parameter>();
  private readonly buffers = new Map<string, tf.Tensor>();
  private readonly nonPersistent = new Set<string>();

  /** Registers `module` as child `name` (also stored as property `name` by the caller). */
  protected registerModule<T extends Module>(name: string, module: T): T {
    assertName(name);
    this.childModules.set(name, module);
    return module;
  }

  /**
   * Registers a parameter. A tensor is wrapped in a new variable (taking ownership of the tensor); an existing
   * variable is shared as is (tied weights).
   */
  protected registerParameter(name: string, value: tf.Tensor | Parameter, options: { requiresGrad?: boolean } = {}): Parameter {
    assertName(name);
    let param: Parameter;
    if (value instanceof tf.Variable) {
      param = value;
    } else {
      param = tf.variable(value, options.requiresGrad ?? true);
      value.dispose();
    }
    if (options.requiresGrad !== undefined) param.trainable = options.requiresGrad;
    this.params.set(name, param);
    return param;
  }

  /**
   * Makes parameter `name` share `param` (tied weights, e.g. an LM head tied to the input embedding), freeing
   * the parameter it replaces and keeping the property of the same name in step.
   */
  tieParameter(name: string, param: Parameter): void {
    const previous = this.params.get(name);
    if (!previous) throw new Error(`${this.constructor.name} has no parameter "${name}" to tie.`);
    if (previous.shape.join() !== param.shape.join()) {
      throw new ShapeError(`Cannot tie ${this.constructor.name}.${name} [${previous.shape.join(', ')}] to a parameter of shape [${param.shape.join(', ')}].`);
    }
    this.setParameter(name, param);
  }

  /** Removes a direct child (adapter containers drop an adapter this way). */
  protected removeChild(name: string): Module | undefined {
    const child = this.childModules.get(name);
    this.childModules.delete(name);
    return child;
  }

  /** Removes and frees a parameter of this module. */
  protected removeParameter(name: string): void {
    const param = this.params.get(name);
    this.params.delete(name);
    if (param && !param.isDisposed) param.dispose();
  }

  /**
   * A deep copy with its own parameters and buffers (PyTorch's `copy.deepcopy(module)`), used for
   * `modules_to_save`. Sharing inside the module (tied weights) is preserved in the copy.
   */
  clone(): this {
    return cloneValue(this, new Map()) as this;
  }

  /** Registers a non-trainable tensor (taking ownership). Non-persistent buffers stay out of the state dict. */
  protected registerBuffer(name: string, value: tf.Tensor, options: { persistent?: boolean } = {}): tf.Tensor {
    assertName(name);
    const previous = this.buffers.get(name);
    if (previous && previous !== value) previous.dispose();
    const kept = tf.keep(value);
    this.buffers.set(name, kept);
    if (options.persistent === false) this.nonPersistent.add(name);
    else this.nonPersistent.delete(name);
    return kept;
  }

  /** Direct children, in registration order. */
  *namedChildren(): Generator<[string, Module]> {
    yield* this.childModules.entries();
  }

  children(): Module[] {
    return [...this.childModules.values()];
  }

  /** This module and all descendants in pre-order, named by dotted path (`''` for this module). */
  *namedModules(prefix = '', seen = new Set<Module>()): Generator<[string, Module]> {
    if (seen.has(this)) return;
    seen.add(this);
    yield [prefix, this];
    for (const [name, child] of this.childModules) {
      yield* child.namedModules(prefix ? `${prefix}.${name}` : name, seen);
    }
  }

  modules(): Module[] {
    return [...this.namedModules()].map(([, m]) => m);
  }

  /** Parameters owned directly by this module. */
  *ownParameters(): Generator<[string, Parameter]> {
    yield* this.params.entries();
  }

  /** All parameters with dotted names; a shared (tied) parameter is listed once, under its first name. */
  *namedParameters(prefix = ''): Generator<[string, Parameter]> {
    const seen = new Set<Parameter>();
    for (const [modulePath, module] of this.namedModules(prefix)) {
      for (const [name, param] of module.params) {
        if (seen.has(param)) continue;
        seen.add(param);
        yield [modulePath ? `${modulePath}.${name}` : name, param];
      }
    }
  }

  parameters(): Parameter[] {
    return [...this.namedParameters()].map(([, p]) => p);
  }

  *namedBuffers(prefix = ''): Generator<[string, tf.Tensor]> {
    for (const [modulePath, module] of this.namedModules(prefix)) {
      for (const [name, buffer] of module.buffers) yield [modulePath ? `${modulePath}.${name}` : name, buffer];
    }
  }

  /** The child at a dotted path (`''` is this module). Throws if absent. */
  getSubmodule(path: string): Module {
    if (path === '') return this;
    return path.split('.').reduce<Module>((module, part) => {
      const next = module.childModules.get(part);
      if (!next) throw new Error(`${module.constructor.name} has no submodule "${part}" (while resolving "${path}").`);
      return next;
    }, this);
  }

  /** Replaces (or adds) the child at a dotted path, keeping the property of the same name in step. */
  setSubmodule(path: string, module: Module): void {
    const dot = path.lastIndexOf('.');
    const parent = dot < 0 ? this : this.getSubmodule(path.slice(0, dot));
    parent.replaceChild(dot < 0 ? path : path.slice(dot + 1), module);
  }

  /**
   * Sets the parameter at a dotted path (`'lm_head.weight'`) to `param`, as PyTorch's
   * `self.lm_head.weight = self.wte.weight` does to tie weights; the property of the same name follows. The
   * replaced variable is disposed unless `dispose: false` (or it is `param` itself).
   */
  setParameter(path: string, param: Parameter, options: { dispose?: boolean } = {}): void {
    const dot = path.lastIndexOf('.');
    const owner = dot < 0 ? this : this.getSubmodule(path.slice(0, dot));
    const name = dot < 0 ? path : path.slice(dot + 1);
    const previous = owner.params.get(name);
    if (!previous) assertName(name);
    owner.params.set(name, param);
    if (Object.prototype.hasOwnProperty.call(owner, name)) {
      (owner as unknown as Record<string, unknown>)[name] = param;
    }
    if (previous && previous !== param && (options.dispose ?? true) && !previous.isDisposed) previous.dispose();
  }

  /** Replaces a direct child. Subclasses that hold children in other structures (ModuleList) override this. */
  protected replaceChild(name: string, module: Module): void {
    if (!this.childModules.has(name)) assertName(name);
    this.childModules.set(name, module);
    if (Object.prototype.hasOwnProperty.call(this, name)) {
      (this as unknown as Record<string, unknown>)[name] = module;
    }
  }

  /**
   * Parameters and persistent buffers by dotted key, shared tensors under every name (as PyTorch does). The
   * tensors are the module's own: do not dispose them.
   */
  stateDict(prefix = ''): StateDict {
    const out: StateDict = {};
    for (const [modulePath, module] of this.walkModules(prefix)) {
      const key = (name: string) => (modulePath ? `${modulePath}.${name}` : name);
      for (const [name, param] of module.params) out[key(name)] = param;
      for (const [name, buffer] of module.buffers) if (!module.nonPersistent.has(name)) out[key(name)] = buffer;
    }
    return out;
  }

  /**
   * Copies values into this module's parameters and buffers. Shapes must match exactly; in strict mode every
   * key must match too. Nothing is modified when the call throws. The caller keeps ownership of `dict`.
   */
  loadStateDict(dict: StateDict | Map<string, tf.Tensor>, options: LoadStateDictOptions = {}): LoadStateDictReport {
    const strict = options.strict ?? true;
    const entries = dict instanceof Map ? dict : new Map(Object.entries(dict));
    const own = this.stateDict();
    const missingKeys = Object.keys(own).filter((k) => !entries.has(k));
    const unexpectedKeys = [...entries.keys()].filter((k) => !Object.hasOwn(own, k));
    const shapeMismatches: ShapeMismatch[] = [];
    for (const [key, target] of Object.entries(own)) {
      const value = entries.get(key);
      if (value && !sameShape(value.shape, target.shape)) {
        shapeMismatches.push({ key, expected: target.shape, actual: value.shape });
      }
    }
    if (shapeMismatches.length || (strict && (missingKeys.length || unexpectedKeys.length))) {
      throw new StateDictError({
        missingKeys: strict ? missingKeys : [],
        unexpectedKeys: strict ? unexpectedKeys : [],
        shapeMismatches,
      });
    }
    for (const [modulePath, module] of this.walkModules()) {
      const key = (name: string) => (modulePath ? `${modulePath}.${name}` : name);
      for (const [name, param] of module.params) {
        const value = entries.get(key(name));
        if (!value) continue;
        if (value.dtype === param.dtype) {
          param.assign(value);
        } else {
          const cast = tf.cast(value, param.dtype);
          param.assign(cast);
          cast.dispose();
        }
      }
      for (const name of module.buffers.keys()) {
        const value = entries.get(key(name));
        if (value && !module.nonPersistent.has(name)) module.registerBuffer(name, tf.clone(value));
      }
    }
    return { missingKeys, unexpectedKeys };
  }

  /**
   * Every module reached through children, shared ones under each of their paths (what PyTorch's `state_dict`
   * and `load_state_dict` walk; `namedModules` lists a shared module once).
   */
  private *walkModules(prefix = ''): Generator<[string, Module]> {
    yield [prefix, this];
    for (const [name, child] of this.childModules) yield* child.walkModules(prefix ? `${prefix}.${name}` : name);
  }

  /** Extra text inside this module's parentheses in `toString()` (PyTorch's `extra_repr`). */
  extraRepr(): string {
    return '';
  }

  /** A PyTorch-like printout of the module tree. */
  toString(): string {
    const lines: string[] = [];
    const extra = this.extraRepr();
    if (extra) lines.push(...extra.split('\n'));
    for (const [name, child] of this.childModules) {
      const childLines = child.toString().split('\n');
      lines.push(`(${name}): ${childLines[0]}`, ...childLines.slice(1));
    }
    const head = this.constructor.name;
    if (lines.length === 0) return `${head}()`;
    if (this.childModules.size === 0 && lines.length === 1) return `${head}(${lines[0]})`;
    return `${head}(\n${lines.map((l) => `  ${l}`).join('\n')}\n)`;
  }

  /** Sets training mode on this module and every descendant (dropout is active only in training). */
  train(mode = true): this {
    for (const module of this.modules()) module.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Sets `requiresGrad` (TF.js `trainable`) on every parameter. */
  requiresGrad(value = true): this {
    for (const param of this.parameters()) param.trainable = value;
    return this;
  }

  /** Frees every parameter and buffer of this module and its descendants. */
  dispose(): void {
    for (const module of this.modules()) {
      for (const param of module.params.values()) if (!param.isDisposed) param.dispose();
      for (const buffer of module.buffers.values()) if (!buffer.isDisposed) buffer.dispose();
    }
  }

  /** Number of parameter elements (counting tied parameters once). */
  numParameters(options: { trainableOnly?: boolean } = {}): number {
    let n = 0;
    for (const p of this.parameters()) if (!options.trainableOnly || p.trainable) n += p.size;
    return n;
  }
}

/** A module that maps one tensor to one tensor: what adapters wrap and what models call. */
export interface Layer extends Module {
  forward(x: tf.Tensor, ctx?: ForwardContext): tf.Tensor;
  /**
   * This layer as `x Wᵀ + b (+ low-rank term)` for fused kernels, given the input's leading dims `[B, S]`;
   * undefined (or absent) when it is not one: the caller then runs `forward`.
   */
  fusedProjection?(lead: readonly number[], ctx?: ForwardContext): FusedProjection | undefined;
}

/** A layer an adapter can target: reports its kind and exposes its weight. */
export interface AdaptableLayer extends Layer {
  readonly kind: LayerKind;
  readonly weight: Parameter;
}

/** A list of modules named "0", "1", ... as PyTorch's `nn.ModuleList`. */
export class ModuleList<T extends Module = Module> extends Module {
  private items: T[] = [];

  constructor(modules: Iterable<T> = []) {
    super();
    for (const m of modules) this.append(m);
  }

  append(module: T): this {
    this.registerModule(String(this.items.length), module);
    this.items.push(module);
    return this;
  }

  get length(): number {
    return this.items.length;
  }

  at(index: number): T {
    const item = this.items[index];
    if (item === undefined) throw new RangeError(`ModuleList index ${index} out of range (length ${this.items.length}).`);
    return item;
  }

  [Symbol.iterator](): Iterator<T> {
    return this.items[Symbol.iterator]();
  }

  /** PyTorch's `ModuleList` printout: runs of identical children are folded into `(0-11): 12 x Block(...)`. */
  override toString(): string {
    if (this.items.length === 0) return `${this.constructor.name}()`;
    const runs: Array<{ start: number; end: number; repr: string }> = [];
    this.items.forEach((item, i) => {
      const repr = item.toString();
      const last = runs[runs.length - 1];
      if (last && last.repr === repr) last.end = i;
      else runs.push({ start: i, end: i, repr });
    });
    const lines = runs.map(({ start, end, repr }) => {
      const head = start === end ? `(${start}): ` : `(${start}-${end}): ${end - start + 1} x `;
      return (head + repr).split('\n').join('\n  ');
    });
    return `${this.constructor.name}(\n  ${lines.join('\n  ')}\n)`;
  }

  protected override replaceChild(name: string, module: Module): void {
    const index = Number(name);
    if (!Number.isInteger(index) || index < 0 || index >= this.items.length) {
      throw new RangeError(`ModuleList has no index "${name}".`);
    }
    super.replaceChild(name, module);
    this.items[index] = module as T;
  }
}

function cloneValue(value: unknown, memo: Map<object, unknown>): unknown {
  if (value === null || typeof value !== 'object') return value;
  const seen = memo.get(value);
  if (seen !== undefined) return seen;
  let copy: unknown;
  if (value instanceof tf.Variable) {
    copy = tf.variable(value, value.trainable);
  } else if (value instanceof tf.Tensor) {
    copy = tf.keep(value.clone());
  } else if (value instanceof Map) {
    const map = new Map();
    memo.set(value, map);
    for (const [k, v] of value) map.set(k, cloneValue(v, memo));
    return map;
  } else if (value instanceof Set) {
    const set = new Set();
    memo.set(value, set);
    for (const v of value) set.add(cloneValue(v, memo));
    return set;
  } else if (Array.isArray(value)) {
    const array: unknown[] = [];
    memo.set(value, array);
    for (const v of value) array.push(cloneValue(v, memo));
    return array;
  } else if (value instanceof Module) {
    const module = Object.create(Object.getPrototypeOf(value) as object) as Record<string, unknown>;
    memo.set(value, module);
    for (const key of Object.keys(value)) module[key] = cloneValue((value as unknown as Record<string, unknown>)[key], memo);
    return module;
  } else {
    // Configs and other plain data are immutable by convention: shared, not copied.
    copy = value;
  }
  memo.set(value, copy);
  return copy;
}

function assertName(name: string): void {
  if (name === '' || name.includes('.')) throw new Error(`Invalid module/parameter name "${name}": it must be non-empty and contain no ".".`);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Throws `ShapeError` unless `x` has rank `rank` and last dimension `last`. */
export function assertLastDim(x: tf.Tensor, last: number, what: string): void {
  if (x.shape[x.rank - 1] !== last) {
    throw new ShapeError(`${what} expects the last input dimension to be ${last}, got shape [${x.shape.join(', ')}].`);
  }
}

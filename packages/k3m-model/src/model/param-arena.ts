/**
 * @file Every parameter of a model in one flat Float32Array, each tensor at a fixed offset in
 * {@link parameterSpec} order. The data-parallel trainer keeps the step's gradient (between
 * steps, the weights) and the AdamW moments in such arenas backed by a `SharedArrayBuffer`:
 * outside every worker's 4 GiB wasm heap, readable by all workers and by the coordinator that
 * writes checkpoints, with no copies.
 */
import { f32, toFloat32, type RawTensor } from '@k3m-kit/core';
import type { ModelConfig } from './config.ts';
import { initialValues, parameterSpec, TIED_DECODER, WORD_EMBEDDINGS, type ParamSpec } from './params.ts';

/** One tensor's place in an arena. */
export interface ArenaSlot extends ParamSpec {
  /** Index in {@link parameterSpec} order. */
  index: number;
  offset: number;
  size: number;
}

/** Offsets of every parameter of `config` in an arena of `total` floats. */
export class ArenaLayout {
  readonly slots: ArenaSlot[];
  readonly byName: Map<string, ArenaSlot>;
  readonly total: number;

  constructor(readonly config: ModelConfig) {
    let offset = 0;
    this.slots = parameterSpec(config).map((s, index) => {
      const size = s.shape.reduce((a, b) => a * b, 1);
      const slot = { ...s, index, offset, size };
      offset += size;
      return slot;
    });
    this.total = offset;
    this.byName = new Map(this.slots.map((s) => [s.name, s]));
  }
}

/** Float32 storage shared between threads when `SharedArrayBuffer` backs it. */
export function sharedFloats(n: number): Float32Array {
  return new Float32Array(new SharedArrayBuffer(n * 4));
}

/**
 * A model's parameters as one Float32Array (the same bytes a state dict holds, without names).
 * @example const a = ParamArena.init(modelConfig('k3m-small', { vocab_size: 100 }), 42, sharedFloats);
 * const params = K3mParams.fromValues(a.layout.config, (n) => a.view(n)); // tf variables
 */
export class ParamArena {
  constructor(
    readonly layout: ArenaLayout,
    readonly data: Float32Array,
  ) {
    if (data.length !== layout.total) throw new RangeError(`arena of ${data.length} floats for a model of ${layout.total}`);
  }

  /** A fresh arena (zeros) of `alloc(n)` floats; plain memory by default, shared with {@link sharedFloats}. */
  static zeros(config: ModelConfig, alloc: (n: number) => Float32Array = (n) => new Float32Array(n)): ParamArena {
    const layout = new ArenaLayout(config);
    return new ParamArena(layout, alloc(layout.total));
  }

  /** The original initialisation from `seed`, the same values as {@link K3mParams.init}. */
  static init(config: ModelConfig, seed: number, alloc?: (n: number) => Float32Array): ParamArena {
    const a = ParamArena.zeros(config, alloc);
    initialValues(config, seed, (s, v) => a.view(s.name).set(v));
    return a;
  }

  /** From a state dict; every parameter must be present with its shape. */
  static fromStateDict(config: ModelConfig, tensors: Map<string, RawTensor>, alloc?: (n: number) => Float32Array): ParamArena {
    const a = ParamArena.zeros(config, alloc);
    const problems: string[] = [];
    for (const s of a.layout.slots) {
      const t = tensors.get(s.name);
      if (!t) problems.push(`missing ${s.name}`);
      else if (t.shape.join() !== s.shape.join()) problems.push(`${s.name}: shape [${t.shape}] instead of [${s.shape}]`);
      else a.view(s.name).set(toFloat32(t));
    }
    if (problems.length) throw new Error(`state dict does not fit the config: ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? ` (+${problems.length - 5} more)` : ''}`);
    return a;
  }

  /** The tensor `name` as a view (no copy). */
  view(name: string): Float32Array {
    const s = this.layout.byName.get(name);
    if (!s) throw new Error(`no parameter ${name}`);
    return this.data.subarray(s.offset, s.offset + s.size);
  }

  /** The state dict with the original's keys (views, no copy), the tied decoder included. */
  toStateDict(): Map<string, RawTensor> {
    const out = new Map<string, RawTensor>();
    for (const s of this.layout.slots) out.set(s.name, f32(s.shape, this.view(s.name)));
    out.set(TIED_DECODER, out.get(WORD_EMBEDDINGS)!);
    return out;
  }
}

export interface InitFromReport {
  loaded: string[];
  /** HF tensors we recognised but whose shape differs, and ones with no counterpart. */
  skipped: { name: string; reason: string }[];
}

/**
 * Loads a Hugging Face BERT checkpoint into the text stream with the mapping the original meant
 * to use (reference 4.8, its bug 1): `bert.embeddings.*` → `bert_tri.embeddings.*`,
 * `bert.encoder.layer.N.*` → `bert_tri.encoder_tri.layer.N.*`, `cls.predictions.*` →
 * `cls.predictions.*`, `gamma`/`beta` → `weight`/`bias`. A bare BertModel (no `bert.` prefix) also works.
 */
export function loadHfBert(params: ParamArena, tensors: Map<string, RawTensor>): InitFromReport {
  const report: InitFromReport = { loaded: [], skipped: [] };
  for (const [hf, t] of tensors) {
    let name = hf.replace(/\.gamma$/, '.weight').replace(/\.beta$/, '.bias');
    if (!name.startsWith('bert.') && !name.startsWith('cls.')) name = `bert.${name}`;
    let target: string | undefined;
    if (name.startsWith('bert.embeddings.')) target = `bert_tri.embeddings.${name.slice('bert.embeddings.'.length)}`;
    else if (name.startsWith('bert.encoder.layer.')) target = `bert_tri.encoder_tri.layer.${name.slice('bert.encoder.layer.'.length)}`;
    else if (name === TIED_DECODER) target = undefined;
    else if (name.startsWith('cls.predictions.')) target = name;
    const slot = target ? params.layout.byName.get(target) : undefined;
    if (!slot) {
      report.skipped.push({ name: hf, reason: name === TIED_DECODER ? 'tied to the word embeddings' : 'no counterpart in K3M' });
      continue;
    }
    if (t.shape.join() !== slot.shape.join()) {
      report.skipped.push({ name: hf, reason: `shape [${t.shape}] vs [${slot.shape}] of ${target}` });
      continue;
    }
    params.view(slot.name).set(toFloat32(t));
    report.loaded.push(target!);
  }
  return report;
}

/**
 * @file AdamW exactly as pytorch_transformers 1.x `AdamW` with the reference's settings
 * (k3m-reference.md 7.2): betas (0.9, 0.98), eps 1e-8 added to √v BEFORE bias correction
 * (`step = lr·√(1−β2ᵗ)/(1−β1ᵗ)`, `p −= step·m/(√v + eps)`), then decoupled decay
 * `p −= lr·wd·p`. Weight decay 0.01 except for names containing `bias`, `LayerNorm.bias` or
 * `LayerNorm.weight` (so the co-attention `LayerNorm1/2` weights ARE decayed, reference 8 #17).
 * Like PyTorch, a parameter without a gradient (never reached by the loss) is skipped entirely:
 * no moment update, no decay.
 *
 * It runs on flat arenas ({@link ParamArena} layout): one fused loop per tensor instead of a
 * dozen tensor ops, over any element range, so data-parallel workers each update a share of
 * one optimizer's state in shared memory.
 */
import { f32, toFloat32, type RawTensor } from '@k3m-kit/core';
import type { ArenaLayout, ArenaSlot } from '../model/param-arena.ts';

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}
export const REFERENCE_ADAMW: AdamWOptions = Object.freeze({ beta1: 0.9, beta2: 0.98, eps: 1e-8, weightDecay: 0.01 });

/** The reference's exclusion rule (T:480-497). */
export function decays(name: string): boolean {
  return !['bias', 'LayerNorm.bias', 'LayerNorm.weight'].some((k) => name.includes(k));
}

/** The moments of every parameter (arena layout) and PyTorch's per-tensor `state['step']`. */
export class AdamState {
  constructor(
    readonly layout: ArenaLayout,
    /** exp_avg */
    readonly m: Float32Array,
    /** exp_avg_sq */
    readonly v: Float32Array,
    /** Updates each tensor has had; 0 = no state yet (never had a gradient). */
    readonly steps: Int32Array,
  ) {}

  /** Zero moments; `alloc` chooses the memory (shared for workers). */
  static create(layout: ArenaLayout, alloc: (n: number) => Float32Array = (n) => new Float32Array(n)): AdamState {
    return new AdamState(layout, alloc(layout.total), alloc(layout.total), new Int32Array(new SharedArrayBuffer(layout.slots.length * 4)));
  }

  /** Moments as tensors `exp_avg.<name>`, `exp_avg_sq.<name>` (tensors with state only) plus their steps. */
  stateDict(): { tensors: Map<string, RawTensor>; steps: Record<string, number> } {
    const tensors = new Map<string, RawTensor>();
    const steps: Record<string, number> = {};
    for (const s of this.layout.slots) {
      const t = this.steps[s.index]!;
      if (!t) continue;
      tensors.set(`exp_avg.${s.name}`, f32(s.shape, this.m.subarray(s.offset, s.offset + s.size)));
      tensors.set(`exp_avg_sq.${s.name}`, f32(s.shape, this.v.subarray(s.offset, s.offset + s.size)));
      steps[s.name] = t;
    }
    return { tensors, steps };
  }

  /** Restores {@link stateDict}'s output into this state. */
  load(tensors: Map<string, RawTensor>, steps: Record<string, number>): void {
    for (const [name, t] of Object.entries(steps)) {
      const s = this.layout.byName.get(name);
      if (!s) throw new Error(`optimizer state names ${name}, which the model does not have`);
      const m = tensors.get(`exp_avg.${name}`);
      const v = tensors.get(`exp_avg_sq.${name}`);
      if (!m || !v) throw new Error(`optimizer state lacks the moments of ${name}`);
      this.m.set(toFloat32(m), s.offset);
      this.v.set(toFloat32(v), s.offset);
      this.steps[s.index] = t;
    }
  }
}

/** One update's inputs: the gradient arena, its scale, which tensors have a gradient. */
export interface AdamWUpdate {
  /** Gradients in arena layout; each is multiplied by `scale` (1/micro-batches, clipping). */
  grads: Float32Array;
  scale: number;
  /** Per tensor (layout index): 1 when it received a gradient this step. */
  hasGrad: ArrayLike<number>;
  lr: number;
}

/**
 * Applies one AdamW update to the elements `[from, to)` of `params` with `state`'s moments;
 * `state.steps` must already count this update for every tensor with a gradient.
 */
export function adamwUpdate(params: Float32Array, state: AdamState, u: AdamWUpdate, from = 0, to = params.length, o: AdamWOptions = REFERENCE_ADAMW): void {
  adamwUpdateFrom((s) => [params, s.offset], params, state, u, from, to, o);
}

/**
 * Where an update reads a tensor's current values: an array and the index of the tensor's first
 * element in it (the arena's own `[data, offset]`, or a tensor's own memory and 0).
 */
export type ParamReader = (slot: ArenaSlot) => readonly [Float32Array, number];

/**
 * {@link adamwUpdate} reading each tensor's current values through `read` and writing the
 * updated ones to `out` (arena layout). `out` may be the gradient arena itself: each element's
 * gradient is read before its new value is written over it.
 */
export function adamwUpdateFrom(read: ParamReader, out: Float32Array, state: AdamState, u: AdamWUpdate, from = 0, to = out.length, o: AdamWOptions = REFERENCE_ADAMW): void {
  const { beta1, beta2, eps, weightDecay } = o;
  const { m, v } = state;
  const g = u.grads;
  for (const s of state.layout.slots) {
    const a = Math.max(from, s.offset);
    const b = Math.min(to, s.offset + s.size);
    if (a >= b || !u.hasGrad[s.index]) continue;
    const t = state.steps[s.index]!;
    const stepSize = (u.lr * Math.sqrt(1 - beta2 ** t)) / (1 - beta1 ** t);
    const keep = decays(s.name) ? 1 - u.lr * weightDecay : 1;
    const k = u.scale;
    const [p, first] = read(s);
    const shift = first - s.offset;
    for (let j = a; j < b; j++) {
      const gj = g[j]! * k;
      const mj = beta1 * m[j]! + (1 - beta1) * gj;
      const vj = beta2 * v[j]! + (1 - beta2) * gj * gj;
      m[j] = mj;
      v[j] = vj;
      // p - step·m/(√v+eps), then the decoupled decay of the updated value
      out[j] = (p[j + shift]! - (stepSize * mj) / (Math.sqrt(vj) + eps)) * keep;
    }
  }
}

/** Σg² over `[from, to)` of the tensors with a gradient (global-norm clipping sums this over shares). */
export function sumOfSquares(grads: Float32Array, layout: ArenaLayout, hasGrad: ArrayLike<number>, from = 0, to = grads.length): number {
  let sum = 0;
  for (const s of layout.slots) {
    const a = Math.max(from, s.offset);
    const b = Math.min(to, s.offset + s.size);
    if (a >= b || !hasGrad[s.index]) continue;
    for (let j = a; j < b; j++) sum += grads[j]! * grads[j]!;
  }
  return sum;
}

/** The factor that scales gradients of global norm `norm` to at most `maxNorm` (PyTorch's clip_grad_norm_). */
export function clipFactor(norm: number, maxNorm: number): number {
  return norm > maxNorm ? maxNorm / (norm + 1e-6) : 1;
}

/**
 * `WarmupLinearSchedule` (T:391-395): factor `s/max(1,W)` below `W = warmup·T`, then
 * `max(0, (T−s)/max(1, T−W))`. The trainer evaluates it at the number of updates already done,
 * as the reference steps the scheduler after the optimizer (so the first update uses factor 0).
 */
export function warmupLinear(s: number, total: number, warmup = 0.1): number {
  const W = warmup * total;
  if (s < W) return s / Math.max(1, W);
  return Math.max(0, (total - s) / Math.max(1, total - W));
}

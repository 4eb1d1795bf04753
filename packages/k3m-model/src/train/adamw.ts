/**
 * @file AdamW exactly as pytorch_transformers 1.x `AdamW` with the reference's settings
 * (k3m-reference.md 7.2): betas (0.9, 0.98), eps 1e-8 added to √v BEFORE bias correction
 * (`step = lr·√(1−β2ᵗ)/(1−β1ᵗ)`, `p −= step·m/(√v + eps)`), then decoupled decay
 * `p −= lr·wd·p`. Weight decay 0.01 except for names containing `bias`, `LayerNorm.bias` or
 * `LayerNorm.weight` (so the co-attention `LayerNorm1/2` weights ARE decayed, reference 8 #17).
 * Like PyTorch, a parameter without a gradient (never reached by the loss) is skipped entirely:
 * no moment update, no decay.
 */
import * as tf from '@tensorflow/tfjs';
import { f32, toFloat32, type RawTensor } from '@k3m-kit/core';

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

interface Slot {
  m: tf.Variable;
  v: tf.Variable;
  /** per-parameter step count, as PyTorch keeps `state['step']` per tensor */
  t: number;
}

export class AdamW {
  private readonly slots = new Map<string, Slot>();

  constructor(readonly opts: AdamWOptions = REFERENCE_ADAMW) {}

  /** One update of `params` (by name) with `grads` (same names; absent = no gradient) at learning rate `lr`. */
  step(params: Map<string, tf.Variable>, grads: Map<string, tf.Tensor>, lr: number): void {
    const { beta1, beta2, eps, weightDecay } = this.opts;
    for (const [name, p] of params) {
      const g = grads.get(name);
      if (!g) continue;
      let s = this.slots.get(name);
      if (!s) {
        s = { m: tf.variable(tf.zerosLike(p), false), v: tf.variable(tf.zerosLike(p), false), t: 0 };
        this.slots.set(name, s);
      }
      s.t++;
      const slot = s;
      tf.tidy(() => {
        const m = tf.add(tf.mul(slot.m, beta1), tf.mul(g, 1 - beta1));
        const v = tf.add(tf.mul(slot.v, beta2), tf.mul(tf.square(g), 1 - beta2));
        slot.m.assign(m);
        slot.v.assign(v);
        const stepSize = (lr * Math.sqrt(1 - beta2 ** slot.t)) / (1 - beta1 ** slot.t);
        let np = tf.sub(p, tf.mul(tf.div(m, tf.add(tf.sqrt(v), eps)), stepSize));
        const wd = decays(name) ? weightDecay : 0;
        if (wd > 0) np = tf.sub(np, tf.mul(np, lr * wd));
        p.assign(np);
      });
    }
  }

  /** Moments as tensors `exp_avg.<name>`, `exp_avg_sq.<name>` plus per-tensor steps (PyTorch's state names). */
  stateDict(): { tensors: Map<string, RawTensor>; steps: Record<string, number> } {
    const tensors = new Map<string, RawTensor>();
    const steps: Record<string, number> = {};
    for (const [name, s] of this.slots) {
      tensors.set(`exp_avg.${name}`, f32(s.m.shape, s.m.dataSync() as Float32Array));
      tensors.set(`exp_avg_sq.${name}`, f32(s.v.shape, s.v.dataSync() as Float32Array));
      steps[name] = s.t;
    }
    return { tensors, steps };
  }

  loadStateDict(tensors: Map<string, RawTensor>, steps: Record<string, number>): void {
    this.dispose();
    for (const [name, t] of Object.entries(steps)) {
      const m = tensors.get(`exp_avg.${name}`);
      const v = tensors.get(`exp_avg_sq.${name}`);
      if (!m || !v) throw new Error(`optimizer state lacks the moments of ${name}`);
      this.slots.set(name, { m: tf.variable(tf.tensor(toFloat32(m), m.shape), false), v: tf.variable(tf.tensor(toFloat32(v), v.shape), false), t });
    }
  }

  dispose(): void {
    for (const s of this.slots.values()) {
      s.m.dispose();
      s.v.dispose();
    }
    this.slots.clear();
  }
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

/** Scales `grads` in place so their global L2 norm is at most `maxNorm`; returns the norm before. */
export function clipByGlobalNorm(grads: Map<string, tf.Tensor>, maxNorm: number): number {
  const norm = Math.sqrt(tf.tidy(() => tf.addN([...grads.values()].map((g) => tf.sum(tf.square(g)))).dataSync()[0]!));
  if (norm > maxNorm) {
    const k = maxNorm / (norm + 1e-6);
    for (const [name, g] of grads) {
      grads.set(name, tf.mul(g, k));
      g.dispose();
    }
  }
  return norm;
}

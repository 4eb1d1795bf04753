/**
 * @file Gradients to parameter updates: each micro-batch's gradient of the summed loss is added
 * up, and every `accumulate` micro-batches (or at the end of an epoch, with fewer) one AdamW step
 * with linear warm-up and decay is taken, after optional global-norm clipping.
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '@k3m-kit/core';
import type { Batch } from '../data/batch.ts';
import { forward, LOSS_NAMES, type FusionMode, type LossName, type LossWeights, type ModelFixes } from '../model/k3m.ts';
import type { K3mParams } from '../model/params.ts';
import { AdamW, clipByGlobalNorm, warmupLinear } from './adamw.ts';
import { lossValues } from './validate.ts';

export interface OptimizerStepOptions {
  fusionMode: FusionMode;
  fixes: ModelFixes;
  weights: LossWeights;
  accumulate: number;
  clip?: number;
  /** Peak learning rate, warm-up share and total steps of the schedule. */
  lr: number;
  warmup: number;
  totalSteps: number;
}

/** What one optimizer step did. */
export interface StepResult {
  lr: number;
  /** The summed loss, averaged over the step's micro-batches. */
  loss: number;
  /** Each loss averaged over the micro-batches that had it. */
  losses: Partial<Record<LossName, number>>;
  /** Records in the step's micro-batches. */
  records: number;
}

export class OptimizerStep {
  private accum = new Map<string, tf.Tensor>();
  private micro = 0;
  private records = 0;
  private loss = 0;
  private losses: Partial<Record<LossName, number>>[] = [];
  private readonly names: string[];
  private readonly byVarName: Map<string, string>;

  constructor(
    private readonly params: K3mParams,
    private readonly adam: AdamW,
    private readonly rng: Rng,
    private readonly o: OptimizerStepOptions,
  ) {
    this.names = [...params.vars.keys()];
    this.byVarName = new Map(this.names.map((n) => [params.vars.get(n)!.name, n]));
  }

  /** Micro-batches accumulated since the last update. */
  get pending(): number {
    return this.micro;
  }

  /**
   * Forward and backward on one micro-batch; when it completes `accumulate` micro-batches, the
   * update at step `step` (0-based) is applied and its result returned.
   */
  microBatch(batch: Batch, step: number): StepResult | undefined {
    const vars = this.params.vars;
    const { value, grads } = tf.variableGrads(() => {
      const r = forward(this.params, batch, { fusionMode: this.o.fusionMode, training: true, rng: this.rng, fixes: this.o.fixes, weights: this.o.weights });
      this.losses.push(lossValues(r.losses));
      return r.loss! as tf.Scalar;
    }, this.names.map((n) => vars.get(n)!));
    this.loss += value.dataSync()[0]!;
    value.dispose();
    for (const [v, g] of Object.entries(grads)) {
      if (!g) continue;
      const name = this.byVarName.get(v)!;
      const prev = this.accum.get(name);
      if (prev) {
        this.accum.set(name, tf.add(prev, g));
        prev.dispose();
        g.dispose();
      } else this.accum.set(name, g);
    }
    this.micro++;
    this.records += batch.shape.batchSize;
    return this.micro < this.o.accumulate ? undefined : this.apply(step);
  }

  /** Applies what was accumulated (fewer than `accumulate` micro-batches at the end of an epoch). */
  flush(step: number): StepResult | undefined {
    return this.micro ? this.apply(step) : undefined;
  }

  /** Forgets accumulated gradients (an epoch boundary after an interruption). */
  reset(): void {
    for (const g of this.accum.values()) g.dispose();
    this.accum = new Map();
    this.micro = 0;
    this.records = 0;
    this.loss = 0;
    this.losses = [];
  }

  dispose(): void {
    this.reset();
  }

  private apply(step: number): StepResult {
    // The mean over micro-batches: the same gradient scale with or without accumulation.
    if (this.micro > 1) {
      const k = this.micro;
      for (const [n, g] of this.accum) {
        this.accum.set(n, tf.tidy(() => tf.div(g, k)));
        g.dispose();
      }
    }
    if (this.o.clip !== undefined) clipByGlobalNorm(this.accum, this.o.clip);
    const lr = this.o.lr * warmupLinear(step, this.o.totalSteps, this.o.warmup);
    this.adam.step(this.params.vars, this.accum, lr);
    const mean: Partial<Record<LossName, number>> = {};
    for (const k of LOSS_NAMES) {
      const xs = this.losses.map((l) => l[k]).filter((x): x is number => x !== undefined);
      if (xs.length) mean[k] = xs.reduce((a, b) => a + b, 0) / xs.length;
    }
    const result: StepResult = { lr, loss: this.loss / this.micro, losses: mean, records: this.records };
    this.reset();
    return result;
  }
}

/**
 * @file Gradients to parameter updates, on the data-parallel workers: each micro-batch's
 * gradient of the summed loss is added up in shared memory, and every `accumulate` micro-batches
 * (or at the end of an epoch, with fewer) one AdamW step with linear warm-up and decay is taken
 * on their mean, after optional global-norm clipping.
 *
 * Every micro-batch takes the key of its dropout and Gumbel streams from the trainer's {@link Rng}
 * (checkpointed), and each item's stream from that key and its place in the micro-batch: the
 * draws do not depend on how the batch is shared.
 */
import type { Rng } from '@k3m-kit/core';
import type { Batch } from '../data/batch.ts';
import { LOSS_NAMES, type LossName } from '../model/k3m.ts';
import { warmupLinear } from './adamw.ts';
import type { WorkerPool } from './worker-pool.ts';

export interface OptimizerStepOptions {
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
  /** The global gradient norm before clipping (only with `clip`). */
  gradNorm?: number;
}

export class OptimizerStep {
  private micro = 0;
  private records = 0;
  private loss = 0;
  private losses: Partial<Record<LossName, number>>[] = [];

  constructor(
    private readonly pool: WorkerPool,
    private readonly rng: Rng,
    private readonly o: OptimizerStepOptions,
  ) {}

  /** Micro-batches accumulated since the last update. */
  get pending(): number {
    return this.micro;
  }

  /**
   * Forward and backward on one micro-batch; when it completes `accumulate` micro-batches, the
   * update at step `step` (0-based) is applied and its result returned.
   */
  async microBatch(batch: Batch, step: number): Promise<StepResult | undefined> {
    const r = await this.pool.micro(batch, this.rng.u32(), this.micro === 0);
    this.loss += r.loss;
    this.losses.push(r.losses);
    this.micro++;
    this.records += batch.shape.batchSize;
    return this.micro < this.o.accumulate ? undefined : this.apply(step);
  }

  /** Applies what was accumulated (fewer than `accumulate` micro-batches at the end of an epoch). */
  async flush(step: number): Promise<StepResult | undefined> {
    return this.micro ? this.apply(step) : undefined;
  }

  /** Forgets accumulated gradients (an epoch boundary after an interruption). */
  reset(): void {
    this.micro = 0;
    this.records = 0;
    this.loss = 0;
    this.losses = [];
  }

  private async apply(step: number): Promise<StepResult> {
    const s = this.pool.shared;
    const T = s.steps.length;
    // PyTorch keeps a step count per tensor and skips tensors without a gradient.
    for (let i = 0; i < T; i++) if (s.hasGrad[i]) s.steps[i]!++;
    const lr = this.o.lr * warmupLinear(step, this.o.totalSteps, this.o.warmup);
    // The mean over micro-batches: the same gradient scale with or without accumulation.
    const gradNorm = await this.pool.apply(lr, 1 / this.micro, this.o.clip);
    const mean: Partial<Record<LossName, number>> = {};
    for (const k of LOSS_NAMES) {
      const xs = this.losses.map((l) => l[k]).filter((x): x is number => x !== undefined);
      if (xs.length) mean[k] = xs.reduce((a, b) => a + b, 0) / xs.length;
    }
    const result: StepResult = { lr, loss: this.loss / this.micro, losses: mean, records: this.records, gradNorm };
    this.reset();
    return result;
  }
}

/**
 * @file One validation pass: each loss averaged over the labelled positions of the whole
 * validation set (a batch without masked regions has no image loss, rather than a 0 that drags
 * the mean down), and the accuracies of the title MLM, knowledge MLM and structure objectives.
 */
import * as tf from '@tensorflow/tfjs';
import type { Batch } from '../data/batch.ts';
import { forward, type FusionMode, type LossName, type LossWeights, type ModelFixes } from '../model/k3m.ts';
import type { K3mParams } from '../model/params.ts';
import type { ValidationMetrics } from './metrics-log.ts';

export interface ValidateOptions {
  fusionMode: FusionMode;
  fixes: ModelFixes;
  weights: LossWeights;
}

/** Scalar losses as numbers. */
export const lossValues = (ls: Partial<Record<LossName, tf.Scalar>>) =>
  Object.fromEntries(Object.entries(ls).map(([k, v]) => [k, v!.dataSync()[0]!])) as Partial<Record<LossName, number>>;

/** Validation losses and accuracies over `batches`; undefined when there is no batch. */
export async function validate(params: K3mParams, batches: AsyncIterable<Batch>, o: ValidateOptions): Promise<Pick<ValidationMetrics, 'batches' | 'losses' | 'accuracy'> | undefined> {
  const sums: Partial<Record<LossName, number>> = {};
  const weightsOf: Partial<Record<LossName, number>> = {};
  const acc = { t: [0, 0], pv: [0, 0], tri: [0, 0] };
  let n = 0;
  for await (const batch of batches) {
    const count: Record<LossName, number> = {
      masked_loss_t: batch.lmLabelIds.filter((l) => l >= 0).length,
      masked_loss_v: batch.imageLabel.filter((l) => l === 1).length,
      masked_loss_pv: batch.lmLabelIdsPv.filter((l) => l >= 0).length,
      loss_tri: 2 * batch.shape.batchSize,
    };
    tf.tidy(() => {
      const r = forward(params, batch, { fusionMode: o.fusionMode, gumbel: 'argmax', fixes: o.fixes, weights: o.weights, accuracy: true });
      for (const [k, v] of Object.entries(lossValues(r.losses)) as [LossName, number][]) {
        if (!count[k]) continue;
        sums[k] = (sums[k] ?? 0) + v * count[k];
        weightsOf[k] = (weightsOf[k] ?? 0) + count[k];
      }
      for (const k of ['t', 'pv', 'tri'] as const) {
        acc[k][0]! += r.accuracy![k][0];
        acc[k][1]! += r.accuracy![k][1];
      }
    });
    n++;
  }
  if (!n) return undefined;
  const ratio = ([a, b]: number[]) => (b ? a! / b : null);
  return {
    batches: n,
    losses: Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, v! / weightsOf[k as LossName]!])),
    accuracy: { title_mlm: ratio(acc.t), knowledge_mlm: o.weights.pv ? ratio(acc.pv) : null, structure: o.weights.tri ? ratio(acc.tri) : null },
  };
}

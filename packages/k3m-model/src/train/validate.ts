/**
 * @file One validation pass: each loss averaged over the labelled positions of the whole
 * validation set (a batch without masked regions has no image loss, rather than a 0 that drags
 * the mean down), and the accuracies of the title MLM, knowledge MLM and structure objectives
 * (the MLMs also at the positions whose input hides the answer, see {@link AccuracyCounts}).
 * Batches are evaluated by whoever holds the model (the training workers, several at a time) and
 * added up in batch order, so the result does not depend on how many evaluate at once.
 */
import type * as tf from '@tensorflow/tfjs';
import type { Batch } from '../data/batch.ts';
import type { AccuracyCounts, LossName, LossWeights } from '../model/k3m.ts';
import type { ValidationMetrics } from './metrics-log.ts';

/** Scalar losses as numbers. */
export const lossValues = (ls: Partial<Record<LossName, tf.Scalar>>) =>
  Object.fromEntries(Object.entries(ls).map(([k, v]) => [k, v!.dataSync()[0]!])) as Partial<Record<LossName, number>>;

/** One batch's losses and accuracy counts (a forward in evaluation mode). */
export interface BatchEval {
  losses: Partial<Record<LossName, number>>;
  accuracy: AccuracyCounts;
}

/** Validation losses and accuracies over `batches`, `parallel` evaluated at once; undefined when there is no batch. */
export async function validate(
  batches: AsyncIterable<Batch>,
  evaluate: (b: Batch) => Promise<BatchEval>,
  o: { weights: LossWeights; parallel: number },
): Promise<Pick<ValidationMetrics, 'batches' | 'losses' | 'accuracy'> | undefined> {
  const sums: Partial<Record<LossName, number>> = {};
  const weightsOf: Partial<Record<LossName, number>> = {};
  const acc = { t: [0, 0], pv: [0, 0], tri: [0, 0], tHidden: [0, 0], pvHidden: [0, 0] };
  let n = 0;
  const add = (batch: Batch, r: BatchEval) => {
    const count: Record<LossName, number> = {
      masked_loss_t: batch.lmLabelIds.filter((l) => l >= 0).length,
      masked_loss_v: batch.imageLabel.filter((l) => l === 1).length,
      masked_loss_pv: batch.lmLabelIdsPv.filter((l) => l >= 0).length,
      loss_tri: 2 * batch.shape.batchSize,
    };
    for (const [k, v] of Object.entries(r.losses) as [LossName, number][]) {
      if (!count[k]) continue;
      sums[k] = (sums[k] ?? 0) + v * count[k];
      weightsOf[k] = (weightsOf[k] ?? 0) + count[k];
    }
    for (const k of ['t', 'pv', 'tri', 'tHidden', 'pvHidden'] as const) {
      acc[k][0]! += r.accuracy[k][0];
      acc[k][1]! += r.accuracy[k][1];
    }
    n++;
  };
  let window: [Batch, Promise<BatchEval>][] = [];
  const drain = async () => {
    for (const [b, r] of window) add(b, await r);
    window = [];
  };
  for await (const batch of batches) {
    const r = evaluate(batch);
    r.catch(() => {}); // awaited in order by drain(); this only keeps a later batch's failure from going unhandled
    window.push([batch, r]);
    if (window.length >= o.parallel) await drain();
  }
  await drain();
  if (!n) return undefined;
  const ratio = ([a, b]: number[]) => (b ? a! / b : null);
  return {
    batches: n,
    losses: Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, v! / weightsOf[k as LossName]!])),
    accuracy: {
      title_mlm: ratio(acc.t),
      knowledge_mlm: o.weights.pv ? ratio(acc.pv) : null,
      structure: o.weights.tri ? ratio(acc.tri) : null,
      title_mlm_hidden: ratio(acc.tHidden),
      knowledge_mlm_hidden: o.weights.pv ? ratio(acc.pvHidden) : null,
    },
  };
}

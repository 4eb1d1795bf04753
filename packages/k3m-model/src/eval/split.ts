/**
 * @file The one split every task shares, over record positions (no records are read here):
 * probes are fitted on the training LMDB's items and scored on the validation LMDB's; without a
 * validation LMDB, a seeded 80/20 split of the training items. Each side may then be capped to a
 * seeded sample. The same seed always gives the same items.
 */
import { createHash } from 'node:crypto';
import { Rng } from '@k3m-kit/core';

/** Which LMDB a side's positions index. */
export type SplitSource = 'train' | 'validation';

export interface SideSplit {
  source: SplitSource;
  /** Record positions in `source`, ascending. */
  positions: number[];
  /** Usable items the side was drawn from (before the cap). */
  of: number;
}

export interface ItemSplit {
  fit: SideSplit;
  eval: SideSplit;
  /** The rule that made the split, in words. */
  description: string;
}

/** Share of the training items that is fitted on when there is no validation LMDB. */
export const FIT_SHARE = 0.8;

/**
 * The fit and evaluation sides from the usable positions of each LMDB, capped to seeded samples
 * (`0` = no cap).
 * @example splitItems([0, 1, 2, 3, 4], undefined, { seed: 42, maxFit: 0, maxEval: 0 }).eval.positions.length // 1
 */
export function splitItems(
  trainUsable: readonly number[],
  validationUsable: readonly number[] | undefined,
  opts: { seed: number; maxFit: number; maxEval: number },
): ItemSplit {
  let fit: readonly number[] = trainUsable;
  let evalSide: readonly number[] = validationUsable ?? [];
  let description = 'fit = training LMDB, eval = validation LMDB';
  if (!validationUsable) {
    const order = Rng.from(opts.seed, 'eval-split').shuffle([...trainUsable.keys()]);
    const cut = Math.round(order.length * FIT_SHARE);
    const pick = (ks: number[]) => ks.sort((a, b) => a - b).map((k) => trainUsable[k]!);
    fit = pick(order.slice(0, cut));
    evalSide = pick(order.slice(cut));
    description = 'no validation LMDB: seeded 80/20 split of the training LMDB';
  }
  return {
    fit: { source: 'train', positions: sample(fit, opts.maxFit, Rng.from(opts.seed, 'eval-fit-sample')), of: fit.length },
    eval: { source: validationUsable ? 'validation' : 'train', positions: sample(evalSide, opts.maxEval, Rng.from(opts.seed, 'eval-eval-sample')), of: evalSide.length },
    description,
  };
}

/** A seeded sample of `cap` elements in their original order (all of them when `cap` is 0 or not smaller). */
export function sample<T>(items: readonly T[], cap: number, rng: Rng): T[] {
  if (cap <= 0 || items.length <= cap) return [...items];
  const idx = rng.shuffle([...items.keys()]).slice(0, cap).sort((a, b) => a - b);
  return idx.map((i) => items[i]!);
}

/** A short fingerprint of an id list, for results.json (the ids themselves go to split.json). */
export const idsDigest = (ids: readonly string[]) => createHash('sha1').update(ids.join('\n')).digest('hex');

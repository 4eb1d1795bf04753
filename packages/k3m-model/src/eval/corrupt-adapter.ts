/**
 * @file ADAPTER, standing in for the data path's `src/data/corrupt.ts` until it lands: the
 * record-level modality-missing and modality-noise operations the evaluation grid needs, with
 * exact rates. Same semantics as the pretraining flags (issue 6): missing blanks the modality the
 * way the pipeline marks a missing one (empty title, empty knowledge, `numBoxes = 0`); noise
 * swaps in another item's modality.
 */
import type { K3mRecord } from '@k3m-kit/lmdb-writer';
import { Rng } from '../data/rng.ts';

export type Modality = 'title' | 'image' | 'knowledge';

const EMPTY = new Float32Array(0);

/** The record with `m` missing. */
export function withoutModality(r: K3mRecord, m: Modality): K3mRecord {
  if (m === 'title') return { ...r, caption: '' };
  if (m === 'knowledge') return { ...r, pv: '' };
  return { ...r, features: EMPTY, clsProb: EMPTY, boxes: EMPTY, numBoxes: 0 };
}

/** The record with its modality `m` taken from `donor` (the item keeps its own id). */
export function withModalityOf(r: K3mRecord, m: Modality, donor: K3mRecord): K3mRecord {
  if (m === 'title') return { ...r, caption: donor.caption };
  if (m === 'knowledge') return { ...r, pv: donor.pv };
  const { features, clsProb, boxes, numBoxes, imageH, imageW, featureDim, numClasses } = donor;
  return { ...r, features, clsProb, boxes, numBoxes, imageH, imageW, featureDim, numClasses };
}

/**
 * Exactly `round(rate * n)` item indices, the first ones of a seeded permutation, so the items
 * corrupted at a lower rate are also corrupted at every higher rate.
 */
export function selectExact(n: number, rate: number, rng: Rng): number[] {
  if (!(rate >= 0 && rate <= 1)) throw new RangeError(`corruption rate ${rate}: must be in [0, 1]`);
  const order = rng.shuffle([...Array(n).keys()]);
  return order.slice(0, Math.round(rate * n)).sort((a, b) => a - b);
}

/**
 * A donor for every item that is never the item itself: one seeded cycle through all items
 * (`n >= 2`), so every item also donates exactly once.
 */
export function derangement(n: number, rng: Rng): Int32Array {
  if (n < 2) throw new RangeError(`modality noise needs at least 2 items to swap between, got ${n}`);
  const order = rng.shuffle([...Array(n).keys()]);
  const donor = new Int32Array(n);
  for (let i = 0; i < n; i++) donor[order[i]!] = order[(i + 1) % n]!;
  return donor;
}

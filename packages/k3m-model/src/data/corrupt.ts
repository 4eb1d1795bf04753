/**
 * @file Modality-missing and modality-noise simulation on records, before preprocessing
 * (k3m-reference.md 6: the reference has none; the paper evaluates robustness to both).
 *
 * - missing: the modality is blanked the way preprocessing represents an absent one: title '' ->
 *   `[CLS][SEP]`; knowledge '' -> `[CLS][SEP]`, no pairs; image numBoxes 0 -> only the global row.
 * - noise: the item receives ANOTHER item's modality (never its own: donors form a derangement by
 *   index). Noise with an image keeps the item's own imageId. Items that are duplicates of one
 *   another in the data may still swap identical content.
 * - an item drawn for both noise and missing of one modality ends up missing it.
 * - rates are per modality in [0, 1]. By default each item is drawn independently with the rate
 *   (pretraining flags `--drop-*`, `--noise-*`); with `exact` exactly round(rate * n) items are
 *   drawn, the first ones of a seeded permutation, so the items corrupted at a lower rate are
 *   among those at a higher one (evaluation). Rate 0 returns the input records untouched; rate 1
 *   corrupts every item.
 */
import type { K3mRecord } from '@k3m-kit/lmdb-writer';
import { Rng } from '@k3m-kit/core';

export const MODALITIES = Object.freeze(['title', 'image', 'knowledge'] as const);
export type Modality = (typeof MODALITIES)[number];

/** Per-modality probabilities (pretraining) or exact shares (evaluation), each in [0, 1], default 0. */
export interface CorruptionRates {
  dropTitle?: number;
  dropImage?: number;
  dropKnowledge?: number;
  noiseTitle?: number;
  noiseImage?: number;
  noiseKnowledge?: number;
}

const RATE_KEYS = Object.freeze({
  missing: { title: 'dropTitle', image: 'dropImage', knowledge: 'dropKnowledge' },
  noise: { title: 'noiseTitle', image: 'noiseImage', knowledge: 'noiseKnowledge' },
} as const);

/** Rates with defaults filled and each checked (the message names the rate and its CLI flag). */
export function resolveCorruptionRates(rates: CorruptionRates = {}): Readonly<Required<CorruptionRates>> {
  const out = { dropTitle: 0, dropImage: 0, dropKnowledge: 0, noiseTitle: 0, noiseImage: 0, noiseKnowledge: 0 };
  for (const k of Object.keys(out) as (keyof CorruptionRates)[]) {
    const v = rates[k] ?? 0;
    if (!(v >= 0 && v <= 1)) {
      const flag = '--' + k.replace(/[A-Z]/, (c) => '-' + c.toLowerCase());
      throw new RangeError(`corruption rate ${k} (${flag}) = ${v}: must be in [0, 1]`);
    }
    out[k] = v;
  }
  return Object.freeze(out);
}

/** True when any rate is above 0. */
export function corrupts(rates: CorruptionRates): boolean {
  return Object.values(rates).some((v) => (v ?? 0) > 0);
}

const EMPTY = new Float32Array(0);

/**
 * The record with `m` missing.
 * @example withoutModality(r, 'title').caption // ''
 */
export function withoutModality(r: K3mRecord, m: Modality): K3mRecord {
  if (m === 'title') return { ...r, caption: '' };
  if (m === 'knowledge') return { ...r, pv: '' };
  return { ...r, features: EMPTY, clsProb: EMPTY, boxes: EMPTY, numBoxes: 0 };
}

/** The record with its modality `m` taken from `donor`; the item keeps its own imageId. */
export function withModalityOf(r: K3mRecord, m: Modality, donor: K3mRecord): K3mRecord {
  if (m === 'title') return { ...r, caption: donor.caption };
  if (m === 'knowledge') return { ...r, pv: donor.pv };
  const { features, clsProb, boxes, numBoxes, imageH, imageW, featureDim, numClasses } = donor;
  return { ...r, features, clsProb, boxes, numBoxes, imageH, imageW, featureDim, numClasses };
}

/**
 * Exactly round(rate * n) item indices (ascending), the first ones of a seeded permutation.
 * @example selectExact(10, 0.25, Rng.from(1)).length // 3 (round(2.5) = 3)
 */
export function selectExact(n: number, rate: number, rng: Rng): number[] {
  if (!(rate >= 0 && rate <= 1)) throw new RangeError(`corruption rate ${rate}: must be in [0, 1]`);
  const order = rng.shuffle([...Array(n).keys()]);
  return order.slice(0, Math.round(rate * n)).sort((a, b) => a - b);
}

/** Indices drawn independently with probability `rate` (ascending); rate 1 draws all. */
export function selectBernoulli(n: number, rate: number, rng: Rng): number[] {
  if (!(rate >= 0 && rate <= 1)) throw new RangeError(`corruption rate ${rate}: must be in [0, 1]`);
  const out: number[] = [];
  for (let i = 0; i < n; i++) if (rng.next() < rate) out.push(i);
  return out;
}

/**
 * A donor for every item that is never the item itself: one seeded cycle through all items
 * (n >= 2), so every item also donates exactly once.
 */
export function derangement(n: number, rng: Rng): Int32Array {
  if (n < 2) throw new RangeError(`modality noise needs at least 2 items to swap between, got ${n}`);
  const order = rng.shuffle([...Array(n).keys()]);
  const donor = new Int32Array(n);
  for (let i = 0; i < n; i++) donor[order[i]!] = order[(i + 1) % n]!;
  return donor;
}

/** What happened to one item. */
export interface ItemCorruption {
  missing: Modality[];
  /** Modality to the index of the item it came from. */
  noise: Partial<Record<Modality, number>>;
}

export interface CorruptionResult {
  /** Same length and order as the input; untouched items are the input objects. */
  records: K3mRecord[];
  /** Per item; `null` when untouched. */
  applied: (ItemCorruption | null)[];
}

/**
 * Applies the rates to a set of records (a batch in pretraining, a whole evaluation set with
 * `exact`). Inputs are not modified. The same (records, rates, rng key) give the same result.
 * @example
 * const { records: noisy } = corruptRecords(batch, { noiseTitle: 0.1, dropImage: 0.1 }, Rng.from(42, 'corrupt', step));
 */
export function corruptRecords(records: readonly K3mRecord[], rates: CorruptionRates, rng: Rng, opts: { exact?: boolean } = {}): CorruptionResult {
  const r = resolveCorruptionRates(rates);
  const n = records.length;
  const out = [...records];
  const applied: (ItemCorruption | null)[] = records.map(() => null);
  const item = (i: number) => (applied[i] ??= { missing: [], noise: {} });
  // Each draw has its own stream keyed from one base, so a selection does not depend on the other rates.
  const base = rng.next();
  const select = (rate: number, key: string) => (rate === 0 ? [] : (opts.exact ? selectExact : selectBernoulli)(n, rate, Rng.from(base, key)));
  for (const m of MODALITIES) {
    const chosen = select(r[RATE_KEYS.noise[m]], `noise-${m}`);
    if (!chosen.length) continue;
    const donors = derangement(n, Rng.from(base, `donor-${m}`));
    for (const i of chosen) {
      out[i] = withModalityOf(out[i]!, m, records[donors[i]!]!);
      item(i).noise[m] = donors[i]!;
    }
  }
  for (const m of MODALITIES) {
    for (const i of select(r[RATE_KEYS.missing[m]], `missing-${m}`)) {
      out[i] = withoutModality(out[i]!, m);
      item(i).missing.push(m);
      delete item(i).noise[m];
    }
  }
  return { records: out, applied };
}

/**
 * @file Instance-level retrieval metrics as Product1M defines them (`CAPTURE/evaluate_suit.py`
 * in zhanxlin/Product1M: `compute_ap`, `compute_p` and the loop over queries), as pure functions
 * over ranked lists so each can be checked by hand.
 *
 * A query shows one or more products (its instance labels); each gallery item is one product
 * (one label). A gallery item is relevant to a query when its label is one of the query's. For
 * a cut-off R, with P relevant gallery items and G gallery items, only the first
 * k = min(R, P, G) ranks count:
 * - AP@R = the mean, over the relevant items found in the first k ranks, of the precision at
 *   their rank (hits so far / rank); 0 when none is found. It is divided by the hits found, not
 *   by k or P (Product1M's normalisation).
 * - Prec@R = hits in the first k ranks / k.
 * mAP@R and Prec@R average over every query.
 *
 * A query without any relevant gallery item (P = 0) scores 0 on both and stays in the average,
 * as in Product1M, where `compute_p` divides by k = 0, the error is caught and printed, and the
 * query's count (`cnt += 1` came first) is kept with nothing added. We differ from that script in
 * two places, both where it fails rather than defines: a query whose labels are partly absent from
 * the gallery scores on the labels that are present (there, the lookup of the absent label throws
 * and zeroes the whole query), and a query's labels are a set (there, a repeated label counts its
 * gallery items twice in P). Its `mAR` is not computed (`compute_ar` keeps only the last label's
 * share, `label_ap =` instead of `+=`).
 */
import type { Rng } from '@k3m-kit/core';

/** Product1M's cut-offs. */
export const INSTANCE_CUTOFFS = Object.freeze([10, 50, 100] as const);

/** One query: its gallery ranking (best first) and which gallery items are relevant. */
export interface RankedQuery {
  /** Gallery indices, best first; at least the first min(R, P, G) of them. */
  ranking: readonly number[];
  relevant: ReadonlySet<number>;
}

/** Hits in the first `k` ranks and the sum of the precisions at those hits. */
function scan(q: RankedQuery, k: number): { hits: number; precisionSum: number } {
  if (q.ranking.length < k) throw new RangeError(`instance ranking holds ${q.ranking.length} items, ${k} needed`);
  let hits = 0;
  let precisionSum = 0;
  for (let i = 0; i < k; i++) {
    if (!q.relevant.has(q.ranking[i]!)) continue;
    hits++;
    precisionSum += hits / (i + 1);
  }
  return { hits, precisionSum };
}

/** The ranks that count at cut-off `r` over a gallery of `gallerySize`: min(R, P, G). */
export const cutoff = (q: RankedQuery, r: number, gallerySize: number) => Math.min(r, q.relevant.size, gallerySize);

/**
 * AP@R of one query (Product1M `compute_ap`); 0 without any relevant item.
 * @example averagePrecisionAt({ ranking: [3, 0, 1, 2], relevant: new Set([0, 2]) }, 10, 4) // 0.5: k = 2, one hit at rank 2
 */
export function averagePrecisionAt(q: RankedQuery, r: number, gallerySize: number): number {
  const k = cutoff(q, r, gallerySize);
  if (k === 0) return 0;
  const { hits, precisionSum } = scan(q, k);
  return hits === 0 ? 0 : precisionSum / hits;
}

/** Prec@R of one query (Product1M `compute_p`); 0 without any relevant item. */
export function precisionAt(q: RankedQuery, r: number, gallerySize: number): number {
  const k = cutoff(q, r, gallerySize);
  return k === 0 ? 0 : scan(q, k).hits / k;
}

export interface InstanceMetrics {
  /** Queries averaged over (those without a relevant item included). */
  count: number;
  /** Queries without any relevant gallery item (each scored 0). */
  withoutRelevant: number;
  /** mAP@R by R; `NaN` without queries. */
  mAP: Record<number, number>;
  /** Prec@R by R; `NaN` without queries. */
  prec: Record<number, number>;
}

/** mAP@R and Prec@R over queries, for each cut-off in `cutoffs`. */
export function instanceRetrievalMetrics(queries: readonly RankedQuery[], gallerySize: number, cutoffs: readonly number[] = INSTANCE_CUTOFFS): InstanceMetrics {
  const mean = (f: (q: RankedQuery) => number) => (queries.length === 0 ? NaN : queries.reduce((s, q) => s + f(q), 0) / queries.length);
  return {
    count: queries.length,
    withoutRelevant: queries.filter((q) => q.relevant.size === 0).length,
    mAP: Object.fromEntries(cutoffs.map((r) => [r, mean((q) => averagePrecisionAt(q, r, gallerySize))])),
    prec: Object.fromEntries(cutoffs.map((r) => [r, mean((q) => precisionAt(q, r, gallerySize))])),
  };
}

/**
 * The gallery items sharing a label with the query (gallery item g shows `galleryLabels[g]`).
 * @example relevantGallery(['a', 'b'], ['a', 'c', 'b']) // Set {0, 2}
 */
export function relevantGallery(queryLabels: readonly string[], galleryLabels: readonly string[]): Set<number> {
  const wanted = new Set(queryLabels);
  const out = new Set<number>();
  galleryLabels.forEach((l, g) => wanted.has(l) && out.add(g));
  return out;
}

/**
 * Gallery indices by descending score, the first `top` of them. Ties are broken by a uniformly
 * random order drawn from `rng` (so a model that scores everything alike ranks at chance, not
 * by gallery position); NaN scores rank last.
 */
export function rankGallery(scores: ArrayLike<number>, rng: Rng, top = scores.length): number[] {
  const n = scores.length;
  const tie = rng.shuffle([...Array(n).keys()]);
  const order = new Int32Array(n);
  tie.forEach((g, pos) => (order[g] = pos));
  const key = (g: number) => (Number.isNaN(scores[g]!) ? -Infinity : scores[g]!);
  return [...Array(n).keys()]
    .sort((a, b) => key(b) - key(a) || (Number.isNaN(scores[a]!) ? 1 : 0) - (Number.isNaN(scores[b]!) ? 1 : 0) || order[a]! - order[b]!)
    .slice(0, top);
}

/**
 * What a uniformly random ranking scores, in expectation, over queries with `positives[q]`
 * relevant items each in a gallery of `gallerySize`: Prec@R = P / G per query; AP@R sums, over
 * the hypergeometric number h of hits in the first k ranks, P(h) times the mean AP given h hits
 * placed uniformly in k ranks, (1/k) * sum_i (1 + (i-1)(h-1)/(k-1)) / i.
 */
export function chanceInstanceRetrieval(
  positives: readonly number[],
  gallerySize: number,
  cutoffs: readonly number[] = INSTANCE_CUTOFFS,
): { mAP: Record<number, number>; prec: Record<number, number> } {
  const G = gallerySize;
  const logFact = new Float64Array(G + 1);
  for (let i = 1; i <= G; i++) logFact[i] = logFact[i - 1]! + Math.log(i);
  const logChoose = (n: number, k: number) => (k < 0 || k > n ? -Infinity : logFact[n]! - logFact[k]! - logFact[n - k]!);
  const expectedAp = (p: number, r: number) => {
    const k = Math.min(r, p, G);
    if (k === 0) return 0;
    let sum = 0;
    for (let h = 1; h <= k; h++) {
      const ph = Math.exp(logChoose(p, h) + logChoose(G - p, k - h) - logChoose(G, k));
      if (ph === 0) continue;
      let apGivenH = 0;
      for (let i = 1; i <= k; i++) apGivenH += (1 + (k === 1 ? 0 : ((i - 1) * (h - 1)) / (k - 1))) / i;
      sum += (ph * apGivenH) / k;
    }
    return sum;
  };
  const mean = (f: (p: number) => number) => (positives.length === 0 || G === 0 ? NaN : positives.reduce((s, p) => s + f(p), 0) / positives.length);
  return {
    mAP: Object.fromEntries(cutoffs.map((r) => [r, mean((p) => expectedAp(p, r))])),
    prec: Object.fromEntries(cutoffs.map((r) => [r, mean((p) => (Math.min(r, p, G) === 0 ? 0 : p / G))])),
  };
}

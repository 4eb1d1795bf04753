/**
 * @file The evaluation metrics, as pure functions over plain arrays so each can be checked by hand.
 *
 * Conventions (README.eval.md repeats them):
 * - An empty input (no items, no queries, an empty gallery) has no defined score: the metric is
 *   `NaN` (written as `null` in results.json), never 0 or 1.
 * - Macro-F1 averages over the classes that occur in the truth or in the predictions; a class
 *   absent from both has no F1 and is not counted (so one class predicted perfectly scores 1).
 * - Ranking ties: the true candidate is ranked as if ties were broken uniformly at random.
 *   With `b` candidates scoring strictly higher and `t` candidates (the true one included)
 *   scoring exactly the same, the rank is `b + (t + 1) / 2` (the average rank) and a hit at K
 *   counts `clamp((K - b) / t, 0, 1)` (the probability of rank <= K). A model that gives every
 *   candidate the same score therefore scores chance, not 0 (pessimistic) or 1 (optimistic).
 *   `ties: 'pessimistic'` ranks the true candidate after all its ties instead.
 */

/** Fraction of positions where `pred[i] === truth[i]`. `NaN` when empty. */
export function accuracy<T>(pred: readonly T[], truth: readonly T[]): number {
  checkSameLength(pred, truth, 'accuracy');
  if (truth.length === 0) return NaN;
  let ok = 0;
  for (let i = 0; i < truth.length; i++) if (pred[i] === truth[i]) ok++;
  return ok / truth.length;
}

/**
 * Unweighted mean of per-class F1 = 2TP / (2TP + FP + FN) over the classes present in `truth`
 * or `pred`. `NaN` when empty.
 * @example macroF1(['a', 'a', 'b'], ['a', 'b', 'b']) // (2/3 + 2/3) / 2
 */
export function macroF1<T>(pred: readonly T[], truth: readonly T[]): number {
  checkSameLength(pred, truth, 'macroF1');
  if (truth.length === 0) return NaN;
  const tp = new Map<T, number>();
  const fp = new Map<T, number>();
  const fn = new Map<T, number>();
  const inc = (m: Map<T, number>, k: T) => m.set(k, (m.get(k) ?? 0) + 1);
  for (let i = 0; i < truth.length; i++) {
    if (pred[i] === truth[i]) inc(tp, truth[i]!);
    else {
      inc(fp, pred[i]!);
      inc(fn, truth[i]!);
    }
  }
  const classes = new Set<T>([...truth, ...pred]);
  let sum = 0;
  for (const c of classes) {
    const t = tp.get(c) ?? 0;
    sum += (2 * t) / (2 * t + (fp.get(c) ?? 0) + (fn.get(c) ?? 0));
  }
  return sum / classes.size;
}

export type TieRule = 'expected' | 'pessimistic';

/** Where the true candidate stands among the scores of one query. */
export interface RankPosition {
  /** Candidates scoring strictly higher than the true one. */
  better: number;
  /** Candidates scoring exactly the same, the true one included (>= 1). */
  tied: number;
}

/**
 * Counts the candidates above and level with `scores[target]`, skipping the indices in
 * `exclude` (the "filtered" setting: other correct answers are not counted as errors).
 */
export function rankPosition(scores: ArrayLike<number>, target: number, exclude?: ReadonlySet<number>): RankPosition {
  if (!Number.isInteger(target) || target < 0 || target >= scores.length) {
    throw new RangeError(`rankPosition: target ${target} outside a gallery of ${scores.length}`);
  }
  const s = scores[target]!;
  if (Number.isNaN(s)) throw new RangeError(`rankPosition: the true candidate's score is NaN`);
  let better = 0;
  let tied = 0;
  for (let g = 0; g < scores.length; g++) {
    if (g !== target && exclude?.has(g)) continue;
    const v = scores[g]!;
    // A NaN score is not a better answer; it ranks after every number.
    if (v > s) better++;
    else if (v === s) tied++;
  }
  return { better, tied };
}

/** The rank of the true candidate under the tie rule (1 = first). */
export function rankOf(p: RankPosition, ties: TieRule = 'expected'): number {
  return ties === 'pessimistic' ? p.better + p.tied : p.better + (p.tied + 1) / 2;
}

/** The (expected) hit at K: 1 when ranked within the first K, fractional inside a tie. */
export function hitAt(p: RankPosition, k: number, ties: TieRule = 'expected'): number {
  if (ties === 'pessimistic') return p.better + p.tied <= k ? 1 : 0;
  return Math.min(1, Math.max(0, (k - p.better) / p.tied));
}

export interface RankMetrics {
  /** Queries scored. */
  count: number;
  /** `hitsAt[k]`: mean hit at k, in [0, 1] (Rank@K in the paper's words, Hits@K for KG). */
  hitsAt: Record<number, number>;
  meanRank: number;
  /** Mean reciprocal rank (from the tie rule's rank). */
  mrr: number;
}

/**
 * Rank@K / Hits@K, mean rank and MRR for a list of queries, each a row of candidate scores
 * (higher = better) and the index of its true candidate. An empty list, or empty galleries,
 * give `count: 0` and `NaN` metrics.
 * @example rankMetrics([[0.9, 0.1], [0.5, 0.5]], [0, 1], [1]) // hitsAt {1: 0.75}, meanRank 1.25
 */
export function rankMetrics(
  scores: readonly ArrayLike<number>[],
  targets: readonly number[],
  ks: readonly number[],
  opts: { ties?: TieRule; exclude?: readonly (ReadonlySet<number> | undefined)[] } = {},
): RankMetrics {
  checkSameLength(scores, targets, 'rankMetrics');
  const ties = opts.ties ?? 'expected';
  const hits = ks.map(() => 0);
  let rankSum = 0;
  let rrSum = 0;
  let count = 0;
  for (let q = 0; q < scores.length; q++) {
    if (scores[q]!.length === 0) continue;
    const p = rankPosition(scores[q]!, targets[q]!, opts.exclude?.[q]);
    const r = rankOf(p, ties);
    rankSum += r;
    rrSum += 1 / r;
    ks.forEach((k, i) => (hits[i]! += hitAt(p, k, ties)));
    count++;
  }
  const mean = (x: number) => (count === 0 ? NaN : x / count);
  return {
    count,
    hitsAt: Object.fromEntries(ks.map((k, i) => [k, mean(hits[i]!)])),
    meanRank: mean(rankSum),
    mrr: mean(rrSum),
  };
}

/**
 * Ranks for a similarity matrix `sim[q * galleryCount + g]` where query q's true match is
 * gallery item `targets[q]` (the identity for paired title/image retrieval).
 */
export function retrievalMetrics(
  sim: Float32Array | readonly number[],
  queryCount: number,
  galleryCount: number,
  targets: readonly number[],
  ks: readonly number[],
  ties: TieRule = 'expected',
): RankMetrics {
  if (sim.length !== queryCount * galleryCount) {
    throw new RangeError(`retrievalMetrics: ${sim.length} scores for ${queryCount} x ${galleryCount}`);
  }
  const rows: ArrayLike<number>[] = [];
  for (let q = 0; q < queryCount; q++) rows.push(sim.slice(q * galleryCount, (q + 1) * galleryCount));
  return rankMetrics(rows, targets, ks, { ties });
}

/** What a random ranking scores on a gallery of `n`: Rank@K = min(K, n) / n, mean rank (n + 1) / 2. */
export function chanceRank(n: number, ks: readonly number[]): { hitsAt: Record<number, number>; meanRank: number } {
  return {
    hitsAt: Object.fromEntries(ks.map((k) => [k, n === 0 ? NaN : Math.min(k, n) / n])),
    meanRank: n === 0 ? NaN : (n + 1) / 2,
  };
}

function checkSameLength(a: { length: number }, b: { length: number }, what: string): void {
  if (a.length !== b.length) throw new RangeError(`${what}: ${a.length} predictions for ${b.length} items`);
}

/**
 * @file The standard measures of continual learning over an accuracy matrix `a[i][j]`, the
 * accuracy on domain j after training stage i (T stages, T domains, stage i trains domain i):
 *
 * - final average accuracy: the mean of the last row, `1/T Σ_j a[T-1][j]`;
 * - average forgetting (Chaudhry et al. 2018, "Riemannian Walk"): for every domain but the last,
 *   the best accuracy any earlier stage reached on it minus the final one,
 *   `1/(T-1) Σ_{j<T-1} (max_{l<T-1} a[l][j] - a[T-1][j])`;
 * - backward transfer (Lopez-Paz and Ranzato 2017, GEM): how training later domains changed a
 *   domain's accuracy since the stage that trained it, `1/(T-1) Σ_{j<T-1} (a[T-1][j] - a[j][j])`
 *   (negative = forgetting).
 *
 * An entry may be `NaN` (undefined, metrics.ts's convention); a measure over a NaN is NaN. With
 * one stage forgetting and backward transfer are undefined (NaN).
 */

/** The three measures of one sequence of stages. */
export interface ContinualMeasures {
  finalAverage: number;
  forgetting: number;
  backwardTransfer: number;
}

const mean = (xs: readonly number[]) => (xs.length === 0 ? NaN : xs.reduce((s, x) => s + x, 0) / xs.length);

/** Checks that `a` is T x T with T >= 1. */
function checkSquare(a: readonly (readonly number[])[]): number {
  const t = a.length;
  if (t === 0) throw new RangeError('accuracy matrix: no stages');
  for (const [i, row] of a.entries()) if (row.length !== t) throw new RangeError(`accuracy matrix: row ${i} has ${row.length} entries, expected ${t} (one per domain)`);
  return t;
}

/** `1/T Σ_j a[T-1][j]`. */
export function finalAverageAccuracy(a: readonly (readonly number[])[]): number {
  return mean(a[checkSquare(a) - 1]!);
}

/** `1/(T-1) Σ_{j<T-1} (max_{l<T-1} a[l][j] - a[T-1][j])`; NaN with one stage. */
export function averageForgetting(a: readonly (readonly number[])[]): number {
  const t = checkSquare(a);
  const last = a[t - 1]!;
  return mean(last.slice(0, t - 1).map((final, j) => Math.max(...a.slice(0, t - 1).map((row) => row[j]!)) - final));
}

/** `1/(T-1) Σ_{j<T-1} (a[T-1][j] - a[j][j])`; NaN with one stage. */
export function backwardTransfer(a: readonly (readonly number[])[]): number {
  const t = checkSquare(a);
  const last = a[t - 1]!;
  return mean(last.slice(0, t - 1).map((final, j) => final - a[j]![j]!));
}

/** All three measures. */
export function continualMeasures(a: readonly (readonly number[])[]): ContinualMeasures {
  return { finalAverage: finalAverageAccuracy(a), forgetting: averageForgetting(a), backwardTransfer: backwardTransfer(a) };
}

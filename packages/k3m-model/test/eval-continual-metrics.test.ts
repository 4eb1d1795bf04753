/**
 * Continual-learning measures against matrices worked out by hand (the arithmetic is in the
 * comments), including one where forgetting and backward transfer disagree: a domain's best
 * accuracy came from a stage after the one that trained it.
 */
import { describe, expect, it } from 'vitest';
import { averageForgetting, backwardTransfer, continualMeasures, finalAverageAccuracy } from '../src/eval/continual-metrics.ts';

describe('continual measures', () => {
  it('two stages, the first domain improved by the second stage (negative forgetting, positive transfer)', () => {
    const a = [
      [0.5, 0.2],
      [0.6, 0.7],
    ];
    // final average (0.6 + 0.7) / 2; forgetting max(0.5) - 0.6; BWT 0.6 - 0.5
    expect(finalAverageAccuracy(a)).toBeCloseTo(0.65, 12);
    expect(averageForgetting(a)).toBeCloseTo(-0.1, 12);
    expect(backwardTransfer(a)).toBeCloseTo(0.1, 12);
  });

  it('four stages where the best earlier accuracy is not the diagonal', () => {
    const a = [
      [0.4, 0.1, 0.2, 0.3],
      [0.5, 0.6, 0.25, 0.1],
      [0.3, 0.7, 0.8, 0.2],
      [0.2, 0.5, 0.6, 0.9],
    ];
    // final average (0.2 + 0.5 + 0.6 + 0.9) / 4 = 0.55
    // forgetting: j0 max(0.4, 0.5, 0.3) - 0.2 = 0.3; j1 max(0.1, 0.6, 0.7) - 0.5 = 0.2; j2 max(0.2, 0.25, 0.8) - 0.6 = 0.2 -> 0.7 / 3
    // BWT: j0 0.2 - 0.4; j1 0.5 - 0.6; j2 0.6 - 0.8 -> -0.5 / 3
    const m = continualMeasures(a);
    expect(m.finalAverage).toBeCloseTo(0.55, 12);
    expect(m.forgetting).toBeCloseTo(0.7 / 3, 12);
    expect(m.backwardTransfer).toBeCloseTo(-0.5 / 3, 12);
  });

  it('one stage: final average only, forgetting and backward transfer undefined (NaN)', () => {
    expect(continualMeasures([[0.7]])).toEqual({ finalAverage: 0.7, forgetting: NaN, backwardTransfer: NaN });
  });

  it('an undefined entry makes the measures that read it undefined, and only those', () => {
    const a = [
      [NaN, 0.2],
      [0.6, 0.7],
    ];
    expect(finalAverageAccuracy(a)).toBeCloseTo(0.65, 12);
    expect(averageForgetting(a)).toBeNaN();
    expect(backwardTransfer(a)).toBeNaN();
  });

  it('refuses a matrix that is not one row per stage and one column per domain', () => {
    expect(() => finalAverageAccuracy([])).toThrow(/no stages/);
    expect(() => averageForgetting([[0.1, 0.2], [0.3]])).toThrow(/row 1 has 1 entries, expected 2/);
    expect(() => backwardTransfer([[0.1, 0.2]])).toThrow(/row 0 has 2 entries, expected 1/);
  });
});

import { describe, expect, it } from 'vitest';
import {
  accuracy,
  chanceRank,
  hitAt,
  macroF1,
  rankMetrics,
  rankOf,
  rankPosition,
  retrievalMetrics,
} from '../src/eval/metrics.ts';

describe('accuracy', () => {
  it('counts exact matches', () => {
    expect(accuracy(['a', 'b', 'c', 'a'], ['a', 'b', 'a', 'a'])).toBe(0.75);
  });
  it('is NaN on no items and rejects mismatched lengths', () => {
    expect(accuracy([], [])).toBeNaN();
    expect(() => accuracy(['a'], [])).toThrow(/1 predictions for 0 items/);
  });
});

describe('macroF1', () => {
  it('averages per-class F1 over classes in truth or prediction', () => {
    // truth a a b c, pred a b b b: a: tp1 fn1 -> 2/3; b: tp1 fp2 -> 2/4; c: fn1 -> 0.
    expect(macroF1(['a', 'b', 'b', 'b'], ['a', 'a', 'b', 'c'])).toBeCloseTo((2 / 3 + 1 / 2 + 0) / 3, 12);
  });
  it('counts a class that is only predicted (F1 0) but not one absent from both', () => {
    // truth a a, pred a z: a: tp1 fn1 -> 2/3; z: fp1 -> 0. Class 'q' never appears and is not counted.
    expect(macroF1(['a', 'z'], ['a', 'a'])).toBeCloseTo(1 / 3, 12);
  });
  it('is 1 for a single class predicted perfectly and 0 when always wrong', () => {
    expect(macroF1(['a', 'a', 'a'], ['a', 'a', 'a'])).toBe(1);
    expect(macroF1(['b', 'b'], ['a', 'a'])).toBe(0);
  });
  it('is NaN on no items', () => {
    expect(macroF1([], [])).toBeNaN();
  });
});

describe('ranks with ties', () => {
  it('places the true candidate inside its tie group', () => {
    // scores: target 0.5; one better (0.9); two others tie at 0.5 -> tied = 3.
    const p = rankPosition([0.5, 0.9, 0.5, 0.1, 0.5], 0);
    expect(p).toEqual({ better: 1, tied: 3 });
    expect(rankOf(p)).toBe(3); // 1 + (3 + 1) / 2
    expect(rankOf(p, 'pessimistic')).toBe(4);
    expect(hitAt(p, 1)).toBe(0);
    expect(hitAt(p, 2)).toBeCloseTo(1 / 3, 12);
    expect(hitAt(p, 3)).toBeCloseTo(2 / 3, 12);
    expect(hitAt(p, 4)).toBe(1);
    expect(hitAt(p, 3, 'pessimistic')).toBe(0);
    expect(hitAt(p, 4, 'pessimistic')).toBe(1);
  });
  it('gives chance to a model that scores every candidate the same', () => {
    const n = 20;
    const rows = Array.from({ length: n }, () => new Array(n).fill(0.25));
    const m = rankMetrics(rows, [...Array(n).keys()], [1, 5, 10]);
    const c = chanceRank(n, [1, 5, 10]);
    expect(m.hitsAt[1]).toBeCloseTo(c.hitsAt[1]!, 12);
    expect(m.hitsAt[5]).toBeCloseTo(0.25, 12);
    expect(m.hitsAt[10]).toBeCloseTo(0.5, 12);
    expect(m.meanRank).toBeCloseTo(10.5, 12);
  });
  it('skips excluded candidates (filtered setting) but never the target', () => {
    const p = rankPosition([0.2, 0.9, 0.8, 0.1], 0, new Set([1, 0]));
    expect(p).toEqual({ better: 1, tied: 1 });
  });
  it('ranks NaN scores last and rejects a NaN or out-of-range target', () => {
    expect(rankPosition([0.1, NaN, 0.3], 0)).toEqual({ better: 1, tied: 1 });
    expect(() => rankPosition([NaN, 1], 0)).toThrow(/NaN/);
    expect(() => rankPosition([1, 2], 2)).toThrow(/outside a gallery of 2/);
  });
});

describe('rankMetrics / retrievalMetrics', () => {
  it('matches hand-computed Rank@K, mean rank and MRR on a 3x3 similarity matrix', () => {
    // q0: true 0 is best -> rank 1. q1: true 1 (0.4) below 0.7 -> rank 2.
    // q2: true 2 ties with g0 at 0.6, g1 0.9 better -> rank 1 + 1.5 = 2.5, hit@2 = 0.5.
    const sim = [0.9, 0.2, 0.1, 0.7, 0.4, 0.3, 0.6, 0.9, 0.6];
    const m = retrievalMetrics(sim, 3, 3, [0, 1, 2], [1, 2, 3]);
    expect(m.count).toBe(3);
    expect(m.hitsAt[1]).toBeCloseTo(1 / 3, 12);
    expect(m.hitsAt[2]).toBeCloseTo((1 + 1 + 0.5) / 3, 12);
    expect(m.hitsAt[3]).toBe(1);
    expect(m.meanRank).toBeCloseTo((1 + 2 + 2.5) / 3, 12);
    expect(m.mrr).toBeCloseTo((1 + 1 / 2 + 1 / 2.5) / 3, 12);
    const pess = retrievalMetrics(sim, 3, 3, [0, 1, 2], [2], 'pessimistic');
    expect(pess.hitsAt[2]).toBeCloseTo(2 / 3, 12);
    expect(pess.meanRank).toBeCloseTo((1 + 2 + 3) / 3, 12);
  });
  it('Hits@K over a value vocabulary larger than K is capped at 1 and K beyond the gallery counts all', () => {
    const m = rankMetrics([[0.1, 0.2]], [0], [1, 10]);
    expect(m.hitsAt).toEqual({ 1: 0, 10: 1 });
    expect(chanceRank(2, [1, 10]).hitsAt).toEqual({ 1: 0.5, 10: 1 });
  });
  it('returns NaN metrics, not zeros, for empty galleries and no queries', () => {
    const none = retrievalMetrics(new Float32Array(0), 0, 0, [], [1, 10]);
    expect(none.count).toBe(0);
    expect(none.hitsAt[1]).toBeNaN();
    expect(none.meanRank).toBeNaN();
    const emptyRows = rankMetrics([[], []], [0, 0], [1]);
    expect(emptyRows.count).toBe(0);
    expect(emptyRows.mrr).toBeNaN();
    expect(chanceRank(0, [1]).meanRank).toBeNaN();
  });
  it('rejects a similarity matrix of the wrong size', () => {
    expect(() => retrievalMetrics([1, 2, 3], 2, 2, [0, 1], [1])).toThrow(/3 scores for 2 x 2/);
  });
});

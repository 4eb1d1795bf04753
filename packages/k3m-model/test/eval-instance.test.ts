import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '@k3m-kit/core';
import type { K3mRecord } from '@k3m-kit/lmdb-writer';
import { CachedEncoder } from '../src/eval/encoder.ts';
import { applyCell, corruptionGrid } from '../src/eval/grid.ts';
import {
  averagePrecisionAt,
  chanceInstanceRetrieval,
  instanceRetrievalMetrics,
  precisionAt,
  rankGallery,
  relevantGallery,
  type RankedQuery,
} from '../src/eval/instance-metrics.ts';
import { instanceRetrievalTask } from '../src/eval/instance-retrieval.ts';
import { itemsOf } from '../src/eval/items.ts';
import type { TaskContext } from '../src/eval/tasks.ts';
import { FakeEncoder, instanceRecords, makeRecords } from './eval-fixtures.ts';

const q = (ranking: number[], relevant: number[]): RankedQuery => ({ ranking, relevant: new Set(relevant) });

describe('Product1M AP@R and Prec@R on hand-computed rankings', () => {
  it('counts only the first min(R, relevant, gallery) ranks', () => {
    // 2 relevant items, so k = 2 for R = 10: only [3, 0] counts, one hit at rank 2.
    const one = q([3, 0, 1, 2, 4], [0, 2]);
    expect(averagePrecisionAt(one, 10, 5)).toBe(0.5);
    expect(precisionAt(one, 10, 5)).toBe(0.5);
    // k = 1: rank 1 is item 3, a miss.
    expect(averagePrecisionAt(one, 1, 5)).toBe(0);
    expect(precisionAt(one, 1, 5)).toBe(0);
    // The gallery bounds k too: 3 items, all relevant, R = 10.
    expect(averagePrecisionAt(q([2, 0, 1], [0, 1, 2]), 10, 3)).toBe(1);
    expect(precisionAt(q([2, 0, 1], [0, 1, 2]), 10, 3)).toBe(1);
  });

  it('divides AP by the hits found, not by k (Product1M normalisation)', () => {
    // 4 relevant, R = 4: first 4 ranks [5, 6, 0, 7], one hit at rank 3 -> AP = (1/3) / 1.
    const r = q([5, 6, 0, 7, 1, 2, 3, 8, 9, 4], [0, 1, 2, 3]);
    expect(averagePrecisionAt(r, 4, 10)).toBeCloseTo(1 / 3, 12);
    expect(precisionAt(r, 4, 10)).toBe(0.25);
  });

  it('scores a query showing several products against all of their listings', () => {
    // Query shows products a and b; gallery labels [a, c, b, a, d]: relevant {0, 2, 3}.
    const relevant = relevantGallery(['a', 'b'], ['a', 'c', 'b', 'a', 'd']);
    expect([...relevant].sort()).toEqual([0, 2, 3]);
    const multi: RankedQuery = { ranking: [2, 1, 0, 4, 3], relevant };
    // R = 10: k = 3, first ranks [2, 1, 0]: hits at 1 and 3 -> AP = (1/1 + 2/3) / 2, Prec = 2/3.
    expect(averagePrecisionAt(multi, 10, 5)).toBeCloseTo(5 / 6, 12);
    expect(precisionAt(multi, 10, 5)).toBeCloseTo(2 / 3, 12);
    // R = 2: k = 2, [2, 1]: one hit at rank 1 -> AP 1, Prec 1/2.
    expect(averagePrecisionAt(multi, 2, 5)).toBe(1);
    expect(precisionAt(multi, 2, 5)).toBe(0.5);
  });

  it('scores a query without any relevant item 0 and keeps it in the averages', () => {
    const none: RankedQuery = { ranking: [0, 1, 2, 3, 4], relevant: relevantGallery(['z'], ['a', 'c', 'b', 'a', 'd']) };
    expect(none.relevant.size).toBe(0);
    expect(averagePrecisionAt(none, 10, 5)).toBe(0);
    expect(precisionAt(none, 10, 5)).toBe(0);
    const m = instanceRetrievalMetrics(
      [q([3, 0, 1, 2, 4], [0, 2]), { ranking: [2, 1, 0, 4, 3], relevant: new Set([0, 2, 3]) }, none],
      5,
      [10],
    );
    expect(m.count).toBe(3);
    expect(m.withoutRelevant).toBe(1);
    expect(m.mAP[10]).toBeCloseTo((0.5 + 5 / 6 + 0) / 3, 12);
    expect(m.prec[10]).toBeCloseTo((0.5 + 2 / 3 + 0) / 3, 12);
    expect(instanceRetrievalMetrics([], 5, [10]).mAP[10]).toBeNaN();
  });

  it('refuses a ranking shorter than the ranks that count', () => {
    expect(() => averagePrecisionAt(q([0], [0, 1, 2]), 10, 5)).toThrow(/holds 1 items, 3 needed/);
  });
});

describe('rankGallery', () => {
  it('ranks by descending score, NaN last, the first `top` only', () => {
    expect(rankGallery([0.1, 0.9, NaN, 0.5], new Rng(1))).toEqual([1, 3, 0, 2]);
    expect(rankGallery([0.1, 0.9, NaN, 0.5], new Rng(1), 2)).toEqual([1, 3]);
  });

  it('breaks ties in a seeded uniformly random order', () => {
    const first = [0, 0, 0, 0];
    for (let s = 0; s < 4000; s++) first[rankGallery([1, 1, 1, 1], new Rng(s))[0]!]!++;
    for (const n of first) expect(n).toBeGreaterThan(850); // ~1000 each
    expect(rankGallery([1, 1, 1, 1, 1], new Rng(7))).toEqual(rankGallery([1, 1, 1, 1, 1], new Rng(7)));
  });
});

describe('chanceInstanceRetrieval', () => {
  it('matches an enumeration by hand', () => {
    // G = 3, P = 2, R = 10 -> k = 2. Of the 6 orders, 4 start with a relevant item (AP 1) and 2
    // put the irrelevant one first (AP 1/2): 5/6. Prec = P / G = 2/3.
    const c = chanceInstanceRetrieval([2], 3, [10]);
    expect(c.mAP[10]).toBeCloseTo(5 / 6, 12);
    expect(c.prec[10]).toBeCloseTo(2 / 3, 12);
    expect(chanceInstanceRetrieval([0], 3, [10]).mAP[10]).toBe(0);
  });

  it('matches random rankings on average', () => {
    const G = 30;
    const positives = [1, 5, 12];
    const rng = new Rng(3);
    const trials = 6000;
    const sum = { ap: 0, p: 0 };
    for (let t = 0; t < trials; t++) {
      for (const P of positives) {
        const query = { ranking: rng.shuffle([...Array(G).keys()]), relevant: new Set([...Array(P).keys()]) };
        sum.ap += averagePrecisionAt(query, 10, G);
        sum.p += precisionAt(query, 10, G);
      }
    }
    const c = chanceInstanceRetrieval(positives, G, [10]);
    expect(sum.ap / (trials * positives.length)).toBeCloseTo(c.mAP[10]!, 2);
    expect(sum.p / (trials * positives.length)).toBeCloseTo(c.prec[10]!, 2);
  });
});

describe('instanceRetrievalTask', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });
  const cells = corruptionGrid(['missing-image'], [0, 1]);
  const ctx = (usesKnowledge: boolean): TaskContext => ({
    encoder: new CachedEncoder(new FakeEncoder()),
    usesKnowledge,
    cells,
    seed: 5,
    fitCorruption: [],
    fitCorruptionShare: 0,
  });

  it('finds every listing of the products a query shows; without the image it falls to chance', async () => {
    const { gallery, queries } = instanceRecords();
    const r = await instanceRetrievalTask(ctx(false), { gallery: itemsOf(gallery), queries: itemsOf(queries) });
    expect(r.fit).toEqual({ gallery: 24, queries: 11, queriesWithoutRelevant: 1 });
    const clean = r.cells.clean!;
    expect(Object.keys(clean).sort()).toEqual(['mAP@10', 'mAP@100', 'mAP@50', 'prec@10', 'prec@100', 'prec@50']);
    // Ten queries retrieve all their listings first; the unknown product scores 0 and is counted.
    expect(clean['mAP@10']).toBeCloseTo(10 / 11, 6);
    expect(clean['prec@10']).toBeCloseTo(10 / 11, 6);
    // Without the image every query is the same input: one ranking for all, right for few.
    const blind = r.cells['missing-image@100']!;
    expect(blind['prec@10']!).toBeLessThan(clean['prec@10']! / 3);
    expect(blind['mAP@10']!).toBeLessThan(clean['mAP@10']! / 2);
  });

  it('refuses a gallery item that shows several products', async () => {
    const { gallery, queries } = instanceRecords();
    const bad = [...gallery, queries[8]!];
    await expect(instanceRetrievalTask(ctx(false), { gallery: itemsOf(bad), queries: itemsOf(queries) })).rejects.toThrow(/q01: 2 instance labels, expected 1/);
  });
});

describe('instance labels as light fields', () => {
  it("come from the record's extra fields and stay with the item when it is corrupted", () => {
    const records: K3mRecord[] = makeRecords(3).map((r, i) => ({ ...r, extra: { instanceLabels: [`p${i}`, 'x'] } }));
    expect(itemsOf(records).info(1)).toEqual({ imageId: 'img1', category: 'cat1', instanceLabels: ['p1', 'x'] });
    const noisy = applyCell(itemsOf(records), { id: 'noisy-image@100', kind: 'noisy-image', rate: 1 }, 1);
    expect([0, 1, 2].map((i) => noisy.items.info(i).instanceLabels)).toEqual([['p0', 'x'], ['p1', 'x'], ['p2', 'x']]);
    // The corrupted record takes only the donor's image.
    expect(noisy.items.get(0).extra).toEqual({ instanceLabels: ['p0', 'x'] });
    expect(noisy.items.get(0).features).not.toBe(records[0]!.features);
  });
});

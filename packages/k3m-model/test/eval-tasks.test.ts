import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { CachedEncoder } from '../src/eval/encoder.ts';
import { corruptionGrid } from '../src/eval/grid.ts';
import { Rng } from '@k3m-kit/core';
import { chooseShrinkage, classificationTask, completionTask, retrievalFitKinds, retrievalTask, type CompletionSplit, type TaskContext } from '../src/eval/tasks.ts';
import { ccaProjection, prepareCca, type Matrix } from '../src/eval/probe.ts';
import { itemsOf } from '../src/eval/items.ts';
import { COLOURS, FakeEncoder, makeRecords } from './eval-fixtures.ts';

const BUDGET = { steps: 150, learningRate: 0.05, weightDecay: 1e-4, batchSize: 0, seed: 1 };
const cells = corruptionGrid(['missing-title-image', 'noisy-title'], [0, 1]);

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function ctx(usesKnowledge: boolean, fitCorruption: TaskContext['fitCorruption'] = []): TaskContext {
  return { encoder: new CachedEncoder(new FakeEncoder()), usesKnowledge, cells, seed: 5, fitCorruption, fitCorruptionShare: 0.5 };
}

describe('classificationTask', () => {
  const all = makeRecords(60);
  const split = { fit: itemsOf(all.slice(0, 40)), eval: itemsOf(all.slice(40)) };

  it('scores every cell, and only the knowledge model survives losing title and image', async () => {
    const withK = await classificationTask(ctx(true), split, BUDGET);
    const without = await classificationTask(ctx(false), split, BUDGET);
    expect(Object.keys(withK.cells)).toEqual(cells.map((c) => c.id));
    expect(withK.cells.clean!.accuracy).toBe(1);
    expect(without.cells.clean!.accuracy).toBe(1);
    const lost = (r: typeof withK) => r.cells['missing-title-image@100']!.accuracy!;
    expect(lost(withK)).toBeGreaterThan(lost(without));
    expect(without.cells['missing-title-image@100']!.macroF1).toBeLessThan(0.5);
  });

  it('with half the fit side corrupted, the probe learns to use the knowledge alone', async () => {
    const withK = await classificationTask(ctx(true, ['missing-title-image']), split, BUDGET);
    expect(withK.cells['missing-title-image@100']!.accuracy).toBe(1);
    expect(withK.cells.clean!.accuracy).toBe(1);
    expect(withK.fit.classes).toBe(4);
  });

  it('is deterministic', async () => {
    const a = await classificationTask(ctx(true), split, BUDGET);
    const b = await classificationTask(ctx(true), split, BUDGET);
    expect(a).toEqual(b);
  });
});

describe('retrievalTask', () => {
  it('reports Rank@1/5/10 and mean rank per direction; a blank query falls to chance', async () => {
    const all = makeRecords(80);
    const split = { fit: itemsOf(all.slice(0, 50)), eval: itemsOf(all.slice(50)) };
    const r = await retrievalTask(ctx(false), split, { dim: 8, shrinkages: [0.1, 0.5, 1], seed: 1 });
    const clean = r.cells.clean!;
    expect(Object.keys(clean).sort()).toEqual(
      ['title-to-image', 'image-to-title'].flatMap((d) => ['rank@1', 'rank@5', 'rank@10', 'meanRank'].map((m) => `${d}.${m}`)).sort(),
    );
    expect(clean['title-to-image.rank@10']).toBeGreaterThan(0.6); // chance 10/30
    // With no title and no image every query is the same input: every candidate ties, so chance.
    expect(r.cells['missing-title-image@100']!['title-to-image.rank@10']).toBeCloseTo(10 / 30, 6);
    expect(r.cells['missing-title-image@100']!['title-to-image.meanRank']).toBeCloseTo(15.5, 6);
  });
});

describe('the retrieval fit', () => {
  it('sees only the missing kinds that leave both sides something of the item, as the model is shown it', () => {
    const all = ['missing-title', 'missing-image', 'missing-knowledge', 'missing-title-image', 'noisy-title', 'noisy-image', 'noisy-title-image'] as const;
    // With knowledge: a missing title leaves the knowledge on the text side; anything without the image blanks the image side.
    expect(retrievalFitKinds(all, true)).toEqual(['missing-title', 'missing-knowledge']);
    // Without knowledge the title is the whole text side.
    expect(retrievalFitKinds(all, false)).toEqual(['missing-knowledge']);
  });

  it('chooses the shrinkage with the lowest mean rank of held-out fit pairs; one shrinkage: no choice', () => {
    // 120 pairs: the image side is a fixed linear map of the text side plus noise.
    const rng = Rng.from(3);
    const rows = 120;
    const t: Matrix = { data: Float32Array.from({ length: rows * 12 }, () => rng.normal()), rows, cols: 12 };
    const mix = Float32Array.from({ length: 12 * 10 }, () => rng.normal());
    const i: Matrix = { data: new Float32Array(rows * 10), rows, cols: 10 };
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < 10; c++) {
        let v = 2 * rng.normal();
        for (let k = 0; k < 12; k++) v += t.data[r * 12 + k]! * mix[k * 10 + c]!;
        i.data[r * 10 + c] = v;
      }
    }
    const grid = [0.001, 0.3, 1];
    const opts = { dim: 8, shrinkages: grid, seed: 1 };
    const chosen = chooseShrinkage(t, i, opts);
    expect(chosen.heldOutMeanRank.map(([r]) => r)).toEqual(grid);
    const ranks = chosen.heldOutMeanRank.map(([, r]) => r);
    console.log(`held-out mean ranks by shrinkage ${grid.join(', ')}: ${ranks.map((r) => r.toFixed(2)).join(', ')}`);
    // 24 held-out pairs (chance mean rank 12.5), none of them fitted on: learnt, not memorised.
    for (const r of ranks) expect(r).toBeLessThan(6);
    expect(new Set(ranks).size).toBeGreaterThan(1);
    // the lowest mean rank wins; a tie goes to the stronger shrinkage
    expect(chosen.shrinkage).toBe(Math.max(...grid.filter((_, k) => ranks[k] === Math.min(...ranks))));
    expect(chooseShrinkage(t, i, { ...opts, shrinkages: [0.3] })).toEqual({ shrinkage: 0.3, heldOutMeanRank: [] });
    expect(chooseShrinkage(t, i, opts)).toEqual(chosen);
  });

  it('prefers shrinkage where the fit pairs are few for their columns: nearly unshrunk CCA fits noise', () => {
    const { t, i } = pairs(Rng.from(3), 120, 40, 30, 6, 2);
    const chosen = chooseShrinkage(t, i, { dim: 8, shrinkages: [0.01, 0.3, 1], seed: 1 });
    const ranks = chosen.heldOutMeanRank.map(([, r]) => r);
    console.log(`held-out mean ranks by shrinkage 0.01, 0.3, 1 (96 fit pairs, 40 + 30 columns): ${ranks.map((r) => r.toFixed(2)).join(', ')}`);
    expect(Math.min(...ranks)).toBeLessThan(6);
    expect(ranks[0]).toBeGreaterThan(Math.min(...ranks));
    expect(chosen.shrinkage).not.toBe(0.01);
  });
});

/**
 * `rows` pairs of a `tCols`-wide and an `iCols`-wide side that share `latent` factors (each side
 * a fixed random linear map of them plus unit noise times `noise`); `latent` 0: unrelated sides.
 */
function pairs(rng: Rng, rows: number, tCols: number, iCols: number, latent: number, noise: number): { t: Matrix; i: Matrix } {
  const side = (cols: number): Matrix => {
    const mix = Float64Array.from({ length: latent * cols }, () => rng.normal());
    return { data: new Float32Array(rows * cols), rows, cols, mix } as Matrix & { mix: Float64Array };
  };
  const t = side(tCols) as Matrix & { mix: Float64Array };
  const i = side(iCols) as Matrix & { mix: Float64Array };
  for (let r = 0; r < rows; r++) {
    const z = Array.from({ length: latent }, () => rng.normal());
    for (const m of [t, i]) {
      for (let c = 0; c < m.cols; c++) {
        let v = noise * rng.normal();
        for (let k = 0; k < latent; k++) v += z[k]! * m.mix[k * m.cols + c]!;
        m.data[r * m.cols + c] = v;
      }
    }
  }
  return { t: { data: t.data, rows, cols: tCols }, i: { data: i.data, rows, cols: iCols } };
}

describe('ccaProjection', () => {
  /** Held-out Rank@10 (title->image side) of a projection fitted on the first `fit` pairs. */
  const heldOutHits = (t: Matrix, i: Matrix, fit: number, shrinkage: number) => {
    const rows = (m: Matrix, from: number, to: number) => ({ data: m.data.slice(from * m.cols, to * m.cols), rows: to - from, cols: m.cols });
    const p = ccaProjection(prepareCca(rows(t, 0, fit), rows(i, 0, fit)), { dim: 16, shrinkage });
    const q = p.projectQuery(rows(t, fit, t.rows));
    const g = p.projectGallery(rows(i, fit, i.rows));
    let hits = 0;
    for (let a = 0; a < q.rows; a++) {
      const score = (b: number) => q.data.slice(a * q.cols, (a + 1) * q.cols).reduce((s, x, k) => s + x * g.data[b * g.cols + k]!, 0);
      const own = score(a);
      let better = 0;
      for (let b = 0; b < g.rows; b++) if (b !== a && score(b) > own) better++;
      if (better < 10) hits++;
    }
    return { hits: hits / q.rows, strengths: p.strengths };
  };

  it('finds the shared factors of paired sides: held-out pairs retrieved far above chance', () => {
    // 400 fit pairs, 200 held out; 64- and 48-wide sides sharing 8 factors under noise as strong as each factor.
    const { t, i } = pairs(Rng.from(11), 600, 64, 48, 8, 1);
    const r = heldOutHits(t, i, 400, 0.2);
    console.log(`ccaProjection shared factors: held-out Rank@10 ${(r.hits * 100).toFixed(1)}% (chance 5%), top strengths ${r.strengths.slice(0, 3).map((c) => c.toFixed(3)).join(', ')}`);
    expect(r.hits).toBeGreaterThan(0.5);
    expect(r.strengths.length).toBe(16);
    for (let k = 1; k < r.strengths.length; k++) expect(r.strengths[k]!).toBeLessThanOrEqual(r.strengths[k - 1]! + 1e-12);
    // 8 shared factors: the 8th pair is far stronger than the 9th, which only fits noise.
    expect(r.strengths[7]!).toBeGreaterThan(2 * r.strengths[8]!);
  });

  it('finds nothing between unrelated sides: held-out pairs at chance', () => {
    const { t, i } = pairs(Rng.from(12), 600, 64, 48, 0, 1);
    const r = heldOutHits(t, i, 400, 0.2);
    console.log(`ccaProjection unrelated sides: held-out Rank@10 ${(r.hits * 100).toFixed(1)}% (chance 5%), top strengths ${r.strengths.slice(0, 3).map((c) => c.toFixed(3)).join(', ')}`);
    // 200 queries at p = 0.05: binomial sd 1.5 points; 3 sd either side.
    expect(r.hits).toBeGreaterThan(0.05 - 0.046);
    expect(r.hits).toBeLessThan(0.05 + 0.046);
  });

  it('with tiny shrinkage equals plain CCA: the strengths are the canonical correlations, which a direct computation gives', () => {
    // 3 columns per side, 200 pairs: plain CCA is well posed; compare with sqrt of the eigenvalues
    // of Cxx^-1 Cxy Cyy^-1 Cyx, computed here independently with 3x3 algebra.
    const { t, i } = pairs(Rng.from(14), 200, 3, 3, 2, 1);
    const p = ccaProjection(prepareCca(t, i), { dim: 3, shrinkage: 1e-9 });
    const expected = canonicalCorrelations(t, i);
    console.log(`plain CCA: ${p.strengths.map((c) => c.toFixed(6)).join(', ')} against ${expected.map((c) => c.toFixed(6)).join(', ')}`);
    for (let k = 0; k < 3; k++) expect(p.strengths[k]!).toBeCloseTo(expected[k]!, 5);
    for (const c of p.strengths) expect(c).toBeLessThanOrEqual(1 + 1e-9);
  });

  it('refuses a shrinkage outside (0, 1] and rows of another width', () => {
    const { t, i } = pairs(Rng.from(13), 30, 5, 4, 2, 1);
    const fit = prepareCca(t, i);
    expect(() => ccaProjection(fit, { dim: 2, shrinkage: 0 })).toThrow(/shrinkage 0 outside/);
    expect(() => ccaProjection(fit, { dim: 2, shrinkage: 1.5 })).toThrow(/outside/);
    expect(() => ccaProjection(fit, { dim: 2, shrinkage: 0.5 }).projectQuery(i)).toThrow(/width 4, fitted on 5/);
  });
});

describe('completionTask', () => {
  it('predicts a hidden value from the rest of the item; Hits@K are filtered', async () => {
    // Relation 0 = colour (value = category's colour), hidden from the knowledge text.
    const hide = (pv: string) => pv.replace(/颜色:[^;]*;/, '');
    const all = makeRecords(48);
    const fitR = all.slice(0, 32).map((r) => ({ ...r, pv: hide(r.pv) }));
    const evalR = all.slice(32).map((r) => ({ ...r, pv: hide(r.pv) }));
    const colourOf = (i: number) => COLOURS.indexOf(all[i]!.pv.match(/颜色:([^;]*);/)![1]!);
    const split: CompletionSplit = {
      numRelations: 1,
      numValues: COLOURS.length,
      fitRecords: itemsOf(fitR),
      fitExamples: fitR.map((_, i) => ({ record: i, relation: 0, value: colourOf(i) })),
      evalRecords: itemsOf(evalR),
      evalExamples: evalR.map((_, i) => ({ record: i, relation: 0, value: colourOf(32 + i), alsoTrue: new Set([(colourOf(32 + i) + 1) % 4]) })),
    };
    const r = await completionTask(ctx(true), split, { ...BUDGET, hidden: 16 });
    expect(r.cells.clean!['hits@1']).toBe(1);
    expect(r.cells.clean!['hits@10']).toBe(1);
    // Without title and image nothing tells the colour: all candidates tie, 3 candidates after filtering.
    expect(r.cells['missing-title-image@100']!['hits@1']).toBeLessThan(0.7);
  });
});

/** Canonical correlations of two 3-column sides: square roots of the eigenvalues of Cxx^-1 Cxy Cyy^-1 Cyx, by its characteristic cubic (test oracle). */
function canonicalCorrelations(t: Matrix, i: Matrix): number[] {
  const n = t.rows;
  const cov = (a: Matrix, b: Matrix) => {
    const ma = [0, 1, 2].map((c) => a.data.filter((_, k) => k % 3 === c).reduce((s, x) => s + x, 0) / n);
    const mb = [0, 1, 2].map((c) => b.data.filter((_, k) => k % 3 === c).reduce((s, x) => s + x, 0) / n);
    return [0, 1, 2].map((x) => [0, 1, 2].map((y) => {
      let s = 0;
      for (let r = 0; r < n; r++) s += (a.data[r * 3 + x]! - ma[x]!) * (b.data[r * 3 + y]! - mb[y]!);
      return s / n;
    }));
  };
  const mul = (a: number[][], b: number[][]) => a.map((row) => [0, 1, 2].map((c) => row.reduce((s, x, k) => s + x * b[k]![c]!, 0)));
  const inv = (m: number[][]) => {
    const [[a, b, c], [d, e, f], [g, h, k]] = m as [[number, number, number], [number, number, number], [number, number, number]];
    const det = a * (e * k - f * h) - b * (d * k - f * g) + c * (d * h - e * g);
    return [
      [(e * k - f * h) / det, (c * h - b * k) / det, (b * f - c * e) / det],
      [(f * g - d * k) / det, (a * k - c * g) / det, (c * d - a * f) / det],
      [(d * h - e * g) / det, (b * g - a * h) / det, (a * e - b * d) / det],
    ];
  };
  const tr = (m: number[][]) => [0, 1, 2].map((r) => [0, 1, 2].map((c) => m[c]![r]!));
  const cxy = cov(t, i);
  const m = mul(mul(inv(cov(t, t)), cxy), mul(inv(cov(i, i)), tr(cxy)));
  // eigenvalues of a 3x3 matrix with real spectrum: the roots of its characteristic polynomial
  const a = -(m[0]![0]! + m[1]![1]! + m[2]![2]!);
  const b = m[0]![0]! * m[1]![1]! - m[0]![1]! * m[1]![0]! + m[0]![0]! * m[2]![2]! - m[0]![2]! * m[2]![0]! + m[1]![1]! * m[2]![2]! - m[1]![2]! * m[2]![1]!;
  const c = -(m[0]![0]! * (m[1]![1]! * m[2]![2]! - m[1]![2]! * m[2]![1]!) - m[0]![1]! * (m[1]![0]! * m[2]![2]! - m[1]![2]! * m[2]![0]!) + m[0]![2]! * (m[1]![0]! * m[2]![1]! - m[1]![1]! * m[2]![0]!));
  // trigonometric solution of the depressed cubic
  const p = b - (a * a) / 3;
  const q = (2 * a ** 3) / 27 - (a * b) / 3 + c;
  const r = Math.sqrt(-p / 3);
  const phi = Math.acos(Math.max(-1, Math.min(1, (3 * q) / (2 * p * r))));
  const roots = [0, 1, 2].map((k) => 2 * r * Math.cos(phi / 3 - (2 * Math.PI * k) / 3) - a / 3);
  return roots.map((x) => Math.sqrt(Math.max(0, x))).sort((x, y) => y - x);
}

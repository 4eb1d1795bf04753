import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { CachedEncoder } from '../src/eval/encoder.ts';
import { corruptionGrid } from '../src/eval/grid.ts';
import { Rng } from '@k3m-kit/core';
import { chooseProjectionDecay, classificationTask, completionTask, retrievalFitKinds, retrievalTask, type CompletionSplit, type TaskContext } from '../src/eval/tasks.ts';
import type { Matrix } from '../src/eval/probe.ts';
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
    const opts = { ...BUDGET, steps: 200, learningRate: 0.03, batchSize: 32, dim: 8, temperature: 0.1 };
    const r = await retrievalTask(ctx(false), split, opts);
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

  it('chooses the L2 penalty with the lowest mean rank of held-out fit pairs; one penalty: no choice', () => {
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
    const opts = { ...BUDGET, steps: 200, learningRate: 0.03, batchSize: 32, dim: 8, temperature: 0.1 };
    const decays = [0, 0.05, 1000];
    const chosen = chooseProjectionDecay(t, i, { ...opts, weightDecays: decays });
    expect(chosen.heldOutMeanRank.map(([wd]) => wd)).toEqual(decays);
    const ranks = chosen.heldOutMeanRank.map(([, r]) => r);
    console.log(`held-out mean ranks by penalty ${decays.join(', ')}: ${ranks.map((r) => r.toFixed(2)).join(', ')}`);
    // 24 held-out pairs (chance mean rank 12.5), none of them fitted on: learnt, not memorised.
    for (const r of ranks) expect(r).toBeLessThan(6);
    expect(new Set(ranks).size).toBeGreaterThan(1);
    // the lowest mean rank wins; a tie goes to the stronger penalty
    expect(chosen.weightDecay).toBe(Math.max(...decays.filter((_, k) => ranks[k] === Math.min(...ranks))));
    expect(chooseProjectionDecay(t, i, opts)).toEqual({ weightDecay: BUDGET.weightDecay, heldOutMeanRank: [] });
    expect(chooseProjectionDecay(t, i, { ...opts, weightDecays: decays })).toEqual(chosen);
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

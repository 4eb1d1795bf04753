/**
 * Records to batches: epoch length ceil(N/B) (no record dropped), shuffling through a bounded seeded buffer,
 * validation order and reproducibility, resume by skipBatches, corruption inside batches and
 * rejection of inconsistent records.
 */
import { describe, expect, it } from 'vitest';
import type { Batch } from '../src/data/batch.ts';
import { Ledger, Rng } from '@k3m-kit/core';
import { batchCount, batches, shuffleBuffer, STOPPED_EARLY, type PipelineOptions } from '../src/data/pipeline.ts';
import { makeRecord } from '../src/data/testing.ts';
import { K3mTokenizer } from '../src/data/tokenizer.ts';

const VOCAB = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', ':', ';', ...'商品标题颜色红蓝0123456789', ...[...'0123456789'].map((d) => '##' + d)];
const tok = K3mTokenizer.fromVocab(VOCAB);
const N = 23;
const records = () =>
  Array.from({ length: N }, (_, i) =>
    makeRecord({ imageId: `item${i}`, caption: `商品标题${i}`, pv: `颜色:红${i};标题:蓝;`, numBoxes: i % 4, featureDim: 4, numClasses: 3, seed: i }),
  );
async function* stream<T>(xs: T[]) {
  yield* xs;
}
const base: PipelineOptions = { tokenizer: tok, batchSize: 4, featureDim: 4, numClasses: 3, shuffleBuffer: 8 };
const collect = async (opts: Partial<PipelineOptions>, rs = records()) => {
  const out: Batch[] = [];
  for await (const b of batches(stream(rs), { ...base, ...opts })) out.push(b);
  return out;
};
const ids = (bs: Batch[]) => bs.flatMap((b) => b.imageIds);

describe('batches', () => {
  it('keeps every record: ceil(N/B) batches, each record exactly once, a smaller last batch', async () => {
    const bs = await collect({});
    expect(bs.map((b) => b.shape.batchSize)).toEqual([4, 4, 4, 4, 4, 3]);
    expect(bs.every((b) => b.inputIds.length === b.shape.batchSize * 36 && b.imageFeat.length === b.shape.batchSize * 37 * 4)).toBe(true);
    expect(ids(bs).length).toBe(N);
    expect(new Set(ids(bs)).size).toBe(N);
    expect(batchCount(N, 4)).toBe(6);
  });

  it('with minBatch 2, a trailing single record joins the batch before it instead of being dropped', async () => {
    const rs = records().slice(0, 21);
    const sizes: number[] = [];
    const bs = await collect({ minBatch: 2, onBatch: ({ size }) => sizes.push(size) }, rs);
    expect(bs.map((b) => b.shape.batchSize)).toEqual([4, 4, 4, 4, 5]);
    expect(sizes).toEqual([4, 4, 4, 4, 5]);
    expect(new Set(ids(bs)).size).toBe(21);
    expect(batchCount(21, 4, 2)).toBe(5);
    expect(batchCount(22, 4, 2)).toBe(6);
    expect(batchCount(1, 4, 2)).toBe(1);
    // resume: skipped batches are announced (for accounting) but not built
    const seen: { size: number; skipped: boolean }[] = [];
    const rest = await collect({ minBatch: 2, skipBatches: 3, onBatch: ({ size, skipped }) => seen.push({ size, skipped }) }, rs);
    expect(rest.map((b) => b.shape.batchSize)).toEqual([4, 5]);
    expect(seen.filter((x) => x.skipped).map((x) => x.size)).toEqual([4, 4, 4]);
  });

  it('counts an epoch in a ledger: read at the source, batched, rejected, and held records when stopped early', async () => {
    const rs = records();
    rs[3] = makeRecord({ imageId: 'bad', numBoxes: 2, featureDim: 9, numClasses: 3 });
    const whole = new Ledger();
    await collect({ ledger: whole, onReject: () => {} }, rs);
    expect(whole.counts()).toEqual({ in: N, written: N - 1, rejected: 1, rejectedByReason: { 'feature width 9, expected 4': 1 }, reconciles: true });
    const cut = new Ledger();
    let trained = 0;
    for await (const b of batches(stream(rs), { ...base, ledger: cut, onReject: () => {} })) {
      trained += b.shape.batchSize;
      if (trained >= 8) break;
    }
    const c = cut.counts();
    expect(c.written).toBe(8);
    // the shuffle buffer (8) and the groups were holding records when training stopped
    expect(c.skippedByReason![STOPPED_EARLY]).toBeGreaterThan(0);
    expect(c.in).toBeLessThan(N);
    expect(c.reconciles).toBe(true);
  });

  it('shuffles in train mode, reproducibly for a seed, differently per epoch', async () => {
    const a = ids(await collect({ seed: 1, epoch: 0 }));
    const b = ids(await collect({ seed: 1, epoch: 0 }));
    const c = ids(await collect({ seed: 1, epoch: 1 }));
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    expect(a).not.toEqual(records().map((r) => r.imageId));
  });

  it('keeps order in validation mode and masks the same way for the same seed and epoch', async () => {
    const v1 = await collect({ mode: 'validation', seed: 3 });
    const v2 = await collect({ mode: 'validation', seed: 3 });
    expect(ids(v1)).toEqual(records().map((r) => r.imageId));
    expect(v1.map((b) => [...b.inputIds])).toEqual(v2.map((b) => [...b.inputIds]));
    expect(v1.map((b) => [...b.imageLabel])).toEqual(v2.map((b) => [...b.imageLabel]));
    // masking is on at validation, as in the reference
    expect(v1.some((b) => b.lmLabelIds.some((l) => l >= 0))).toBe(true);
    const v3 = await collect({ mode: 'validation', seed: 4 });
    expect(v3.map((b) => [...b.inputIds])).not.toEqual(v1.map((b) => [...b.inputIds]));
  });

  it('resumes: the batches after skipBatches equal those of an uninterrupted epoch', async () => {
    const opts = { seed: 7, epoch: 2, corruption: { dropTitle: 0.3, noiseImage: 0.3 } };
    const full = await collect(opts);
    const resumed = await collect({ ...opts, skipBatches: 2 });
    expect(resumed).toEqual(full.slice(2));
  });

  it('stops after maxBatches, also on an endless stream', async () => {
    async function* endless() {
      for (let i = 0; ; i++) yield makeRecord({ imageId: `e${i}`, numBoxes: 1, featureDim: 4, numClasses: 3 });
    }
    const out: Batch[] = [];
    for await (const b of batches(endless(), { ...base, maxBatches: 3 })) out.push(b);
    expect(out).toHaveLength(3);
    expect(await collect({ maxBatches: 2, skipBatches: 1 })).toHaveLength(1);
  });

  it('applies corruption within each batch', async () => {
    const bs = await collect({ corruption: { dropImage: 1, dropTitle: 1 } });
    for (const b of bs) {
      for (let i = 0; i < b.shape.batchSize; i++) {
        expect([...b.imageMask.subarray(i * 37, (i + 1) * 37)].reduce((x, y) => x + y)).toBe(1);
        expect([...b.inputIds.subarray(i * 36, i * 36 + 3)]).toEqual([tok.ids.cls, tok.ids.sep, 0]);
      }
    }
    await expect(collect({ batchSize: 1, corruption: { noiseTitle: 0.5 } })).rejects.toThrow(/at least 2/);
  });

  it('rejects inconsistent records through onReject, or throws without it', async () => {
    const rs = records();
    rs[5] = makeRecord({ imageId: 'bad', numBoxes: 2, featureDim: 9, numClasses: 3 });
    const rejected: string[] = [];
    const bs = await collect({ mode: 'validation', onReject: (r, why) => rejected.push(`${r.imageId}: ${why}`) }, rs);
    expect(rejected).toEqual(['bad: feature width 9, expected 4']);
    expect(ids(bs)).not.toContain('bad');
    expect(ids(bs)).toHaveLength(N - 1);
    expect(bs.map((b) => b.shape.batchSize)).toEqual([4, 4, 4, 4, 4, 2]);
    await expect(collect({ mode: 'validation' }, rs)).rejects.toThrow(/record bad: feature width 9/);
  });
});

describe('shuffleBuffer', () => {
  it('emits every item once', async () => {
    const out: number[] = [];
    for await (const x of shuffleBuffer([...Array(100).keys()], 10, Rng.from(1))) out.push(x);
    expect([...out].sort((a, b) => a - b)).toEqual([...Array(100).keys()]);
    expect(out).not.toEqual([...Array(100).keys()]);
  });
});

/**
 * Records to batches: epoch length floor(N/B), shuffling through a bounded seeded buffer,
 * validation order and reproducibility, resume by skipBatches, corruption inside batches and
 * rejection of inconsistent records.
 */
import { describe, expect, it } from 'vitest';
import type { Batch } from '../src/data/batch.ts';
import { batches, shuffleBuffer, type PipelineOptions } from '../src/data/pipeline.ts';
import { Rng } from '@k3m-kit/core';
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
  it('yields floor(N/B) full batches per epoch, each record at most once; the rest with dropLast false', async () => {
    const bs = await collect({});
    expect(bs).toHaveLength(Math.floor(N / 4));
    expect(bs.every((b) => b.shape.batchSize === 4 && b.inputIds.length === 4 * 36 && b.imageFeat.length === 4 * 37 * 4)).toBe(true);
    expect(new Set(ids(bs)).size).toBe(20);
    const all = await collect({ dropLast: false });
    expect(all.map((b) => b.shape.batchSize)).toEqual([4, 4, 4, 4, 4, 3]);
    expect(new Set(ids(all)).size).toBe(N);
  });

  it('shuffles in train mode, reproducibly for a seed, differently per epoch', async () => {
    const a = ids(await collect({ seed: 1, epoch: 0 }));
    const b = ids(await collect({ seed: 1, epoch: 0 }));
    const c = ids(await collect({ seed: 1, epoch: 1 }));
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    expect(a).not.toEqual(records().slice(0, 20).map((r) => r.imageId));
  });

  it('keeps order in validation mode and masks the same way for the same seed and epoch', async () => {
    const v1 = await collect({ mode: 'validation', seed: 3 });
    const v2 = await collect({ mode: 'validation', seed: 3 });
    expect(ids(v1)).toEqual(records().slice(0, 20).map((r) => r.imageId));
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
      for (let i = 0; i < 4; i++) {
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
    expect(bs).toHaveLength(5);
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

/**
 * Per-record preprocessing and collation: masking rates (seeded, statistical), the reference's
 * knowledge rule and index pairs on its worked example, edge cases (no boxes, empty title or
 * knowledge, more than 10 pairs, values holding `:`), region overlap expansion and injection.
 * Uses a small hand-made vocabulary, so it needs no fixtures.
 */
import { describe, expect, it } from 'vitest';
import { collate } from '../src/data/collate.ts';
import {
  boxOverlaps,
  drawRegionChoice,
  encodeRecord,
  imageSide,
  knowledgePairs,
  knowledgeText,
  maskKnowledge,
  maskTitle,
  preprocess,
  recordProblem,
  resolvePreprocessOptions,
} from '../src/data/preprocess.ts';
import { Rng } from '@k3m-kit/core';
import { makeRecord } from '../src/data/testing.ts';
import { K3mTokenizer } from '../src/data/tokenizer.ts';

// [PAD]=0 ... then the characters the tests use; ids differ from bert-base-chinese on purpose.
const VOCAB = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', ':', ';', ...'省份河北款式经济型功能多时间颜色红标题商品abc0123456789', ...[...'0123456789'].map((d) => '##' + d)];
const tok = K3mTokenizer.fromVocab(VOCAB);
const { cls, sep, mask, colon: C, semicolon: S } = tok.ids;
const small = resolvePreprocessOptions({ featureDim: 4, numClasses: 3 });
const id = (ch: string) => VOCAB.indexOf(ch);

async function sampleOf(spec: Parameters<typeof makeRecord>[0], opts = small, key = 0) {
  const r = makeRecord({ featureDim: opts.featureDim, numClasses: opts.numClasses, ...spec });
  return preprocess(r, await encodeRecord(tok, r), tok, opts, Rng.from('t', key));
}

describe('title masking', () => {
  it('selects 15% of tokens; 80% [MASK], 10% random id, 10% kept (seeded, 200k tokens)', () => {
    const n = 200_000;
    const ids = Array.from({ length: n }, (_, i) => 7 + (i % 30));
    const orig = [...ids];
    const labels = maskTitle(ids, { ids: tok.ids, vocabSize: 21128 }, 0.15, Rng.from('title-rate'));
    const sel = labels.flatMap((l, i) => (l >= 0 ? [i] : []));
    expect(sel.every((i) => labels[i] === orig[i])).toBe(true);
    expect(sel.length / n).toBeCloseTo(0.15, 2);
    const masked = sel.filter((i) => ids[i] === mask).length / sel.length;
    const kept = sel.filter((i) => ids[i] === orig[i]).length / sel.length;
    const random = sel.filter((i) => ids[i] !== mask && ids[i] !== orig[i]);
    expect(masked).toBeCloseTo(0.8, 1);
    expect(kept).toBeCloseTo(0.1, 1);
    expect(random.length / sel.length).toBeCloseTo(0.1, 1);
    // random ids come from the whole vocabulary
    expect(Math.max(...random.map((i) => ids[i]!))).toBeGreaterThan(15000);
    expect(labels.filter((l, i) => l < 0 && ids[i] !== orig[i])).toEqual([]);
  });

  it('is off at probability 0 and the same for the same seed', async () => {
    const a = await sampleOf({ caption: '商品标题商品标题', numBoxes: 0 }, resolvePreprocessOptions({ ...small, titleMaskProb: 0 }));
    expect([...a.lmLabelIds].every((l) => l === -1)).toBe(true);
    const b1 = await sampleOf({ caption: '商品标题'.repeat(8), numBoxes: 0 }, small, 5);
    const b2 = await sampleOf({ caption: '商品标题'.repeat(8), numBoxes: 0 }, small, 5);
    expect(b1.inputIds).toEqual(b2.inputIds);
  });
});

describe('knowledge masking and index pairs', () => {
  it('reproduces the reference worked example (3.3)', async () => {
    const s = await sampleOf({ pv: '省份:河北省;款式:经济型;功能:多功能;', numBoxes: 0 });
    const text = [...s.inputIdsPv].filter((x) => x).map((x) => VOCAB[x]).join('');
    expect(text).toBe('[CLS]省份:河北省;款式:[MASK][MASK][MASK];功能:[MASK][MASK][MASK];[SEP]');
    expect([...s.indexP.subarray(0, 6)]).toEqual([1, 3, 8, 10, 15, 17]);
    expect([...s.indexV.subarray(0, 6)]).toEqual([4, 7, 11, 14, 18, 21]);
    expect(s.numPairs).toBe(3);
    expect([...s.lmLabelIdsPv].filter((l) => l >= 0)).toEqual([...'经济型多功能'].map(id));
  });

  it('masks the value of a single PV, appending the missing final ;', async () => {
    expect(knowledgeText('省份:河北省')).toBe('省份:河北省;');
    expect(knowledgeText('省份:河北省; ')).toBe('省份:河北省; ');
    expect(knowledgeText('  ')).toBe('  ');
    const s = await sampleOf({ pv: '省份:河北省', numBoxes: 0 });
    expect([...s.lmLabelIdsPv].filter((l) => l >= 0)).toEqual([...'河北省'].map(id));
    expect([...s.indexP.subarray(0, 4)]).toEqual([1, 3, 0, 0]);
    expect([...s.indexV.subarray(0, 4)]).toEqual([4, 7, 0, 0]);
  });

  it('masks a truncated last value to the end and leaves its pair out', () => {
    // p:v; q:w; r:x  (cut after r:x)
    const ids = [10, C, 11, S, 12, C, 13, S, 14, C, 15];
    const labels = maskKnowledge(ids, tok, 'reference');
    expect(ids).toEqual([10, C, 11, S, 12, C, mask, S, 14, C, mask]);
    expect(labels).toEqual([-1, -1, -1, -1, -1, -1, 13, -1, -1, -1, 15]);
    const pairs = knowledgePairs([cls, ...ids], tok, 10);
    expect(pairs.p).toEqual([[1, 2], [5, 6]]);
    expect(pairs.v).toEqual([[3, 4], [7, 8]]);
  });

  it('caps index pairs at maxPairs (reference bug 12)', async () => {
    const s = await sampleOf({ pv: 'a:b;'.repeat(12), numBoxes: 0 });
    expect(s.numPairs).toBe(10);
    expect([...s.indexP.subarray(18, 20)]).toEqual([37, 38]);
    expect(s.indexP.length).toBe(20);
    const wide = await sampleOf({ pv: 'a:b;'.repeat(12), numBoxes: 0 }, resolvePreprocessOptions({ ...small, maxPairs: 12, pvLen: 60 }));
    expect(wide.numPairs).toBe(12);
  });

  it('follows the reference on values holding `:` (misaligned spans, no pairs), without crashing', async () => {
    const s = await sampleOf({ pv: '时间:10:30;颜色:红;', numBoxes: 0 });
    const text = [...s.inputIdsPv].filter((x) => x).map((x) => VOCAB[x]).join(' ');
    expect(text).toBe('[CLS] 时 间 : 1 ##0 : [MASK] [MASK] [MASK] [MASK] [MASK] [MASK] [MASK] [MASK] [SEP]');
    expect(s.numPairs).toBe(0);
    expect([...s.lmLabelIdsPv].filter((l) => l >= 0)).toEqual([id('3'), id('##0'), S, id('颜'), id('色'), C, mask, S]);
  });

  it('random mode masks about 15% of values, the first PV included; none masks nothing', () => {
    let values = 0;
    let masked = 0;
    let firstMasked = 0;
    for (let k = 0; k < 2000; k++) {
      const ids = [10, C, 11, S, 12, C, 13, 14, S, 15, C, 16, S];
      const labels = maskKnowledge(ids, tok, 'random', 0.15, Rng.from('pv-random', k));
      values += 3;
      masked += [6, 10, 11].filter((i) => labels[i]! >= 0).length + (labels[2]! >= 0 ? 1 : 0);
      firstMasked += labels[2]! >= 0 ? 1 : 0;
      expect(labels[7]! >= 0).toBe(labels[6]! >= 0);
    }
    expect(masked / values).toBeGreaterThan(0.12);
    expect(masked / values).toBeLessThan(0.18);
    expect(firstMasked).toBeGreaterThan(0);
    const ids = [10, C, 11, S];
    expect(maskKnowledge(ids, tok, 'none')).toEqual([-1, -1, -1, -1]);
  });

  it('empty title and empty knowledge are [CLS][SEP] with no labels and no pairs', async () => {
    const s = await sampleOf({ caption: '', pv: '', numBoxes: 0 });
    expect([...s.inputIds.subarray(0, 3)]).toEqual([cls, sep, 0]);
    expect([...s.inputMask].reduce((a, b) => a + b)).toBe(2);
    expect([...s.inputIdsPv.subarray(0, 3)]).toEqual([cls, sep, 0]);
    expect([...s.inputMaskPv].reduce((a, b) => a + b)).toBe(2);
    expect([...s.lmLabelIds, ...s.lmLabelIdsPv].every((l) => l === -1)).toBe(true);
    expect([...s.indexP, ...s.indexV].every((v) => v === 0)).toBe(true);
  });

  it('truncates to titleLen-2 / pvLen-2 tokens before [CLS]/[SEP]', async () => {
    const s = await sampleOf({ caption: '0123456789'.repeat(5), numBoxes: 0 }, resolvePreprocessOptions({ ...small, titleMaskProb: 0 }));
    expect(s.inputIds[0]).toBe(cls);
    expect(s.inputIds[35]).toBe(sep);
    expect(s.inputIds[34]).toBe(id('##3'));
  });
});

describe('region masking and the image side', () => {
  it('selects about 15% of boxes and zeroes about 90% of those (seeded)', () => {
    let sel = 0;
    let zero = 0;
    const n = 36;
    const trials = 3000;
    for (let k = 0; k < trials; k++) {
      const c = drawRegionChoice(n, Rng.from('regions', k), small);
      sel += c.selected.reduce((a, b) => a + b, 0);
      zero += c.zeroed.reduce((a, b) => a + b, 0);
      for (let i = 0; i < n; i++) if (c.zeroed[i]) expect(c.selected[i]).toBe(1);
    }
    expect(sel / (n * trials)).toBeCloseTo(0.15, 2);
    expect(zero / sel).toBeCloseTo(0.9, 1);
  });

  it('computes "+1" IoU and expands the global-row mask to overlapping boxes', () => {
    const r = makeRecord({ numBoxes: 3, featureDim: 4, numClasses: 3 });
    r.boxes.set([0, 0, 99, 99, 1, 1, 100, 100, 300, 300, 320, 320]);
    const ov = boxOverlaps(r.boxes, 3);
    expect(ov[0]).toBe(1);
    expect(ov[1]).toBeCloseTo((99 * 99) / (2 * 100 * 100 - 99 * 99), 6);
    expect(ov[2]).toBe(0);
    const side = imageSide(r, { selected: Uint8Array.of(1, 0, 0), zeroed: Uint8Array.of(1, 0, 0) }, small);
    expect([...side.maskedLabel.subarray(0, 4)]).toEqual([1, 1, 0, 0]);
    expect([...side.imageLabel.subarray(0, 4)]).toEqual([1, -1, -1, -1]);
    expect([...side.imageFeat.subarray(0, 4)]).toEqual([0, 0, 0, 0]);
    expect([...side.imageFeat.subarray(4, 8)]).toEqual([...r.features.subarray(4, 8)]);
    expect([...side.imageMask.subarray(0, 4)]).toEqual([1, 1, 1, 0]);
    // a selected but kept box stays visible and still labelled
    const kept = imageSide(r, { selected: Uint8Array.of(0, 0, 1), zeroed: Uint8Array.of(0, 0, 0) }, small);
    expect([...kept.imageFeat.subarray(8, 12)]).toEqual([...r.features.subarray(8, 12)]);
    expect(kept.imageLabel[2]).toBe(1);
    expect([...kept.maskedLabel.subarray(0, 3)]).toEqual([0, 0, 1]);
  });

  it('writes 5-d locations x1/W, y1/H, x2/W, y2/H, area/(W*H)', () => {
    const r = makeRecord({ numBoxes: 1, featureDim: 4, numClasses: 3, imageW: 200, imageH: 100 });
    r.boxes.set([20, 10, 120, 60]);
    const side = imageSide(r, { selected: Uint8Array.of(0), zeroed: Uint8Array.of(0) }, small);
    expect([...side.imageLoc.subarray(0, 5)].map((v) => +v.toFixed(6))).toEqual([0.1, 0.1, 0.6, 0.6, 0.25]);
  });

  it('an image-less item has only the global row: zero features, location [0,0,1,1,1], mask 1', async () => {
    const s = await sampleOf({ numBoxes: 0, caption: '商品', pv: '颜色:红;' });
    expect([...s.imageMask].every((v) => v === 0)).toBe(true);
    expect([...s.imageLabel].every((v) => v === -1)).toBe(true);
    const withImage = await sampleOf({ numBoxes: 4, imageId: 'b' });
    const batch = collate([s, withImage], small);
    const R1 = small.regions + 1;
    expect([...batch.imageFeat.subarray(0, R1 * 4)].every((v) => v === 0)).toBe(true);
    expect([...batch.imageLoc.subarray(0, 5)]).toEqual([0, 0, 1, 1, 1]);
    expect([...batch.imageMask.subarray(0, R1)]).toEqual([1, ...Array(small.regions).fill(0)]);
    expect([...batch.imageMask.subarray(R1, 2 * R1)].reduce((a, b) => a + b)).toBe(5);
  });

  it('global row = sum of all rows / max(1, rows outside the overlap mask)', async () => {
    const s = await sampleOf({ numBoxes: 4 });
    s.maskedLabel.fill(0);
    s.maskedLabel[0] = 1;
    const batch = collate([s, s], small);
    const sum = [0, 1, 2, 3].map((d) => [0, 1, 2, 3].reduce((a, r) => a + s.imageFeat[r * 4 + d]!, 0));
    [0, 1, 2, 3].forEach((d) => expect(batch.imageFeat[d]).toBeCloseTo(sum[d]! / (small.regions - 1), 6));
    expect(batch.shape).toEqual({ batchSize: 2, titleLen: 36, pvLen: 48, regions: 36, featureDim: 4, numClasses: 3, maxPairs: 10 });
    expect(batch.imageIds).toEqual([s.imageId, s.imageId]);
  });

  it('keeps the first `regions` boxes of a record with more', async () => {
    const s = await sampleOf({ numBoxes: 40 });
    expect([...s.imageMask].reduce((a, b) => a + b)).toBe(36);
  });

  it('names what is wrong with an inconsistent record', () => {
    expect(recordProblem(makeRecord({ numBoxes: 2, featureDim: 8, numClasses: 3 }), small)).toMatch(/feature width 8, expected 4/);
    expect(recordProblem(makeRecord({ numBoxes: 2, featureDim: 4, numClasses: 0 }), small)).toMatch(/--no-cls-prob/);
    expect(recordProblem(makeRecord({ numBoxes: 2, featureDim: 4, numClasses: 3, imageW: 0 }), small)).toMatch(/image size 0x480/);
    expect(recordProblem(makeRecord({ numBoxes: 0, featureDim: 8, numClasses: 0 }), small)).toBeNull();
  });
});

describe('options', () => {
  it('rejects bad values naming the option', () => {
    expect(() => resolvePreprocessOptions({ titleMaskProb: 1.5 })).toThrow(/titleMaskProb=1.5/);
    expect(() => resolvePreprocessOptions({ titleLen: 1 })).toThrow(/titleLen=1/);
    expect(() => resolvePreprocessOptions({ knowledgeMasking: 'x' as 'none' })).toThrow(/reference, random, none/);
  });
});

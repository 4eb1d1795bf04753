/**
 * @file Cutting a micro-batch into a fixed number of shares of contiguous items for the
 * data-parallel workers, and the whole batch's label counts each share's losses divide by.
 */
import type { Batch, BatchShape } from '../data/batch.ts';
import type { BatchShare } from '../model/k3m.ts';

/** Labelled title tokens, masked regions, labelled PV tokens and items of a whole micro-batch. */
export function batchCounts(b: Batch): BatchShare['counts'] {
  let t = 0;
  let v = 0;
  let pv = 0;
  for (const l of b.lmLabelIds) if (l >= 0) t++;
  for (const l of b.imageLabel) if (l === 1) v++;
  for (const l of b.lmLabelIdsPv) if (l >= 0) pv++;
  return { t, v, pv, items: b.shape.batchSize };
}

/** Items `[from, to)` of share `i` of `parts` over `n` items (sizes differ by at most one). */
export function shareRange(n: number, parts: number, i: number): [number, number] {
  return [Math.floor((n * i) / parts), Math.floor((n * (i + 1)) / parts)];
}

/** The shares a micro-batch of `n` items is cut into: `shares`, at most one per item. */
export const sharesIn = (n: number, shares: number): number => Math.max(1, Math.min(shares, n));

type ItemArrays = Exclude<keyof Batch, 'shape' | 'imageIds'>;

/** Values per item of each array of a batch of shape `s` (batch.ts). */
function itemSizes(s: BatchShape): Record<ItemArrays, number> {
  const { titleLen: Lt, pvLen: Lp, regions: R, featureDim: F, numClasses: C, maxPairs: P } = s;
  return {
    inputIds: Lt, inputMask: Lt, segmentIds: Lt, lmLabelIds: Lt, isNext: 1,
    inputIdsPv: Lp, inputMaskPv: Lp, segmentIdsPv: Lp, lmLabelIdsPv: Lp, isNextPvV: 1, isNextPvT: 1,
    imageFeat: (R + 1) * F, imageLoc: (R + 1) * 5, imageTarget: R * C, imageLabel: R, imageMask: R + 1,
    indexP: 2 * P, indexV: 2 * P,
  };
}

/** Items `[from, to)` of `b` as a batch of their own (copies: they travel to another thread). */
export function sliceBatch(b: Batch, from: number, to: number): Batch {
  const sizes = itemSizes(b.shape);
  const out = { shape: { ...b.shape, batchSize: to - from }, imageIds: b.imageIds.slice(from, to) } as Batch;
  for (const key of Object.keys(sizes) as ItemArrays[]) {
    const a = b[key];
    const per = sizes[key];
    if (a.length !== b.shape.batchSize * per) throw new RangeError(`batch field ${key} has ${a.length} values, not ${b.shape.batchSize} items of ${per}`);
    (out as unknown as Record<ItemArrays, Int32Array | Float32Array>)[key] = a.slice(from * per, to * per);
  }
  return out;
}

/**
 * @file Splitting a micro-batch into contiguous shares of items, one per data-parallel worker,
 * and the whole batch's label counts each share's losses divide by.
 */
import type { Batch } from '../data/batch.ts';
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

/** Items `[from, to)` of `b` as a batch of their own (copies; they travel to another thread). */
export function sliceBatch(b: Batch, from: number, to: number): Batch {
  const B = b.shape.batchSize;
  const cut = <T extends Int32Array | Float32Array>(a: T): T => {
    const per = a.length / B;
    return a.slice(from * per, to * per) as T;
  };
  return {
    shape: { ...b.shape, batchSize: to - from },
    inputIds: cut(b.inputIds),
    inputMask: cut(b.inputMask),
    segmentIds: cut(b.segmentIds),
    lmLabelIds: cut(b.lmLabelIds),
    isNext: cut(b.isNext),
    inputIdsPv: cut(b.inputIdsPv),
    inputMaskPv: cut(b.inputMaskPv),
    segmentIdsPv: cut(b.segmentIdsPv),
    lmLabelIdsPv: cut(b.lmLabelIdsPv),
    isNextPvV: cut(b.isNextPvV),
    isNextPvT: cut(b.isNextPvT),
    imageFeat: cut(b.imageFeat),
    imageLoc: cut(b.imageLoc),
    imageTarget: cut(b.imageTarget),
    imageLabel: cut(b.imageLabel),
    imageMask: cut(b.imageMask),
    indexP: cut(b.indexP),
    indexV: cut(b.indexV),
    imageIds: b.imageIds.slice(from, to),
  };
}

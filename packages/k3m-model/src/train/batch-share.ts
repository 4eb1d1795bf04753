/**
 * @file Cutting a micro-batch into a fixed number of shares for the data-parallel workers, and
 * the whole batch's label counts each share's losses divide by.
 *
 * The structure loss pairs each item with the NEXT item's c_initial (reference 4.6), so a share
 * also carries its neighbour: the item after its last one (the micro-batch's first for the last
 * share), with its labels cleared. Its forward and backward are computed again there, so a share
 * needs nothing from another and its gradient is a function of its items alone: summed in share
 * order, the micro-batch's gradient is the same bits on any number of workers.
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

/** Share `k` of `parts`: its own items `[from, to)`, then (with more than one share) its neighbour. */
export function shareItems(n: number, parts: number, k: number): { items: number[]; own: number } {
  const [from, to] = shareRange(n, parts, k);
  const items = Array.from({ length: to - from }, (_, i) => from + i);
  if (parts > 1) items.push(to % n);
  return { items, own: to - from };
}

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

/** Labels that make a loss count a position; cleared to "no label" on a neighbour item. */
const NO_LABEL: Partial<Record<ItemArrays, number>> = { lmLabelIds: -1, lmLabelIdsPv: -1, imageLabel: -1 };

/**
 * Items `items` of `b` as a batch of their own (copies: they travel to another thread); the
 * items after the first `own` keep their inputs but lose their labels.
 */
export function pickItems(b: Batch, items: readonly number[], own = items.length): Batch {
  const sizes = itemSizes(b.shape);
  const out = { shape: { ...b.shape, batchSize: items.length }, imageIds: items.map((i) => b.imageIds[i]!) } as Batch;
  for (const key of Object.keys(sizes) as ItemArrays[]) {
    const a = b[key];
    const per = sizes[key];
    if (a.length !== b.shape.batchSize * per) throw new RangeError(`batch field ${key} has ${a.length} values, not ${b.shape.batchSize} items of ${per}`);
    const copy = new (a.constructor as Int32ArrayConstructor | Float32ArrayConstructor)(items.length * per);
    items.forEach((item, i) => {
      copy.set(a.subarray(item * per, (item + 1) * per), i * per);
      if (i >= own && NO_LABEL[key] !== undefined) copy.fill(NO_LABEL[key]!, i * per, (i + 1) * per);
    });
    (out as unknown as Record<ItemArrays, Int32Array | Float32Array>)[key] = copy;
  }
  return out;
}

/**
 * @file Samples to a {@link Batch} (k3m-reference.md 3.4): stack every field and prepend the
 * global image row. Its features are the float32 sum of all region rows (zeroed, overlapping and
 * padding rows included) divided by max(1, rows whose overlap mask is 0), the reference's
 * "approximately the mean of unmasked regions" (bug 9, reproduced); location [0,0,1,1,1]; mask 1.
 * An item without boxes gets a zero global row, so the model sees only that row.
 */
import type { Batch, BatchShape } from './batch.ts';
import type { ResolvedPreprocessOptions, Sample } from './preprocess.ts';

/** The reference's global-row location. */
export const GLOBAL_LOC = Object.freeze([0, 0, 1, 1, 1] as const);

/** Batch shape of `batchSize` samples preprocessed with `opts`. */
export function batchShape(batchSize: number, opts: ResolvedPreprocessOptions): BatchShape {
  return {
    batchSize,
    titleLen: opts.titleLen,
    pvLen: opts.pvLen,
    regions: opts.regions,
    featureDim: opts.featureDim,
    numClasses: opts.numClasses,
    maxPairs: opts.maxPairs,
  };
}

/** Float32 global feature row of one sample's [regions, featureDim] rows (DS:294-296). */
export function globalRow(feat: Float32Array, maskedLabel: Uint8Array, regions: number, featureDim: number): Float32Array {
  const out = new Float32Array(featureDim);
  // Row-by-row float32 accumulation, as numpy reduces axis 1 of [B, 36, D].
  for (let r = 0; r < regions; r++) {
    const row = feat.subarray(r * featureDim, (r + 1) * featureDim);
    for (let d = 0; d < featureDim; d++) out[d] = out[d]! + row[d]!;
  }
  let unmasked = 0;
  for (let r = 0; r < regions; r++) if (!maskedLabel[r]) unmasked++;
  const denom = Math.max(1, unmasked);
  for (let d = 0; d < featureDim; d++) out[d] = out[d]! / denom;
  return out;
}

/**
 * Stacks samples (all preprocessed with `opts`) into a batch.
 * @example
 * const batch = collate(samples, opts);
 * batch.imageFeat.length; // B * (regions + 1) * featureDim
 */
export function collate(samples: readonly Sample[], opts: ResolvedPreprocessOptions): Batch {
  const B = samples.length;
  if (B === 0) throw new RangeError('collate: no samples');
  const shape = batchShape(B, opts);
  const { titleLen: T, pvLen: P, regions: R, featureDim: D, numClasses: C, maxPairs: K } = shape;
  const stack = (pick: (s: Sample) => Int32Array, len: number) => {
    const out = new Int32Array(B * len);
    samples.forEach((s, b) => {
      const v = pick(s);
      if (v.length !== len) throw new RangeError(`collate: sample ${s.imageId} has a field of length ${v.length}, expected ${len}`);
      out.set(v, b * len);
    });
    return out;
  };
  const imageFeat = new Float32Array(B * (R + 1) * D);
  const imageLoc = new Float32Array(B * (R + 1) * 5);
  const imageTarget = new Float32Array(B * R * C);
  const imageMask = new Int32Array(B * (R + 1));
  samples.forEach((s, b) => {
    if (s.imageFeat.length !== R * D || s.imageTarget.length !== R * C) throw new RangeError(`collate: sample ${s.imageId} was preprocessed with other image sizes`);
    const fBase = b * (R + 1) * D;
    imageFeat.set(globalRow(s.imageFeat, s.maskedLabel, R, D), fBase);
    imageFeat.set(s.imageFeat, fBase + D);
    imageLoc.set(GLOBAL_LOC, b * (R + 1) * 5);
    imageLoc.set(s.imageLoc, b * (R + 1) * 5 + 5);
    imageTarget.set(s.imageTarget, b * R * C);
    imageMask[b * (R + 1)] = 1;
    imageMask.set(s.imageMask, b * (R + 1) + 1);
  });
  return {
    shape,
    inputIds: stack((s) => s.inputIds, T),
    inputMask: stack((s) => s.inputMask, T),
    segmentIds: new Int32Array(B * T),
    lmLabelIds: stack((s) => s.lmLabelIds, T),
    isNext: new Int32Array(B),
    inputIdsPv: stack((s) => s.inputIdsPv, P),
    inputMaskPv: stack((s) => s.inputMaskPv, P),
    segmentIdsPv: new Int32Array(B * P),
    lmLabelIdsPv: stack((s) => s.lmLabelIdsPv, P),
    isNextPvV: new Int32Array(B),
    isNextPvT: new Int32Array(B),
    imageFeat,
    imageLoc,
    imageTarget,
    imageLabel: stack((s) => s.imageLabel, R),
    imageMask,
    indexP: stack((s) => s.indexP, K * 2),
    indexV: stack((s) => s.indexV, K * 2),
    imageIds: samples.map((s) => s.imageId),
  };
}

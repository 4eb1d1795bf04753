/**
 * @file A {@link Batch} as safetensors, both directions: the tensors of k3m-reference.md 3.4
 * under the reference's names ({@link BATCH_FIELDS}), ints as I64, floats as F32, exactly the
 * layout of the golden `inputs.safetensors`. `k3m-model forward --inputs` reads it.
 */
import { f32, i64, toFloat32, toInt32, type RawTensor } from '@k3m-kit/core';
import { BATCH_FIELDS, type Batch } from '../data/batch.ts';

/** A batch from tensors named as the golden `inputs.safetensors` (reference 3.4). */
export function batchFromTensors(t: Map<string, RawTensor>): Batch {
  const get = (n: string) => {
    const v = t.get(n);
    if (!v) throw new Error(`inputs lack ${n}`);
    return v;
  };
  const ids = get('input_ids');
  const pv = get('input_ids_pv');
  const feat = get('image_feat');
  const target = get('image_target');
  const idx = get('index_p');
  const ints = (n: string) => toInt32(get(n));
  const b: Batch = {
    shape: {
      batchSize: ids.shape[0]!,
      titleLen: ids.shape[1]!,
      pvLen: pv.shape[1]!,
      regions: feat.shape[1]! - 1,
      featureDim: feat.shape[2]!,
      numClasses: target.shape[2]!,
      maxPairs: idx.shape[1]!,
    },
    inputIds: ints(BATCH_FIELDS.inputIds),
    inputMask: ints(BATCH_FIELDS.inputMask),
    segmentIds: ints(BATCH_FIELDS.segmentIds),
    lmLabelIds: ints(BATCH_FIELDS.lmLabelIds),
    isNext: ints(BATCH_FIELDS.isNext),
    inputIdsPv: ints(BATCH_FIELDS.inputIdsPv),
    inputMaskPv: ints(BATCH_FIELDS.inputMaskPv),
    segmentIdsPv: ints(BATCH_FIELDS.segmentIdsPv),
    lmLabelIdsPv: ints(BATCH_FIELDS.lmLabelIdsPv),
    isNextPvV: ints(BATCH_FIELDS.isNextPvV),
    isNextPvT: ints(BATCH_FIELDS.isNextPvT),
    imageFeat: toFloat32(feat),
    imageLoc: toFloat32(get(BATCH_FIELDS.imageLoc)),
    imageTarget: toFloat32(target),
    imageLabel: ints(BATCH_FIELDS.imageLabel),
    imageMask: ints(BATCH_FIELDS.imageMask),
    indexP: ints(BATCH_FIELDS.indexP),
    indexV: ints(BATCH_FIELDS.indexV),
    imageIds: Array.from({ length: ids.shape[0]! }, (_, i) => String(i)),
  };
  return b;
}

/** The batch as tensors named and shaped as the golden `inputs.safetensors`. */
export function batchToTensors(b: Batch): Map<string, RawTensor> {
  const { batchSize: B, titleLen: Lt, pvLen: Lp, regions: R, featureDim: F, numClasses: C, maxPairs: P } = b.shape;
  const shapes: Record<keyof typeof BATCH_FIELDS, number[]> = {
    inputIds: [B, Lt], inputMask: [B, Lt], segmentIds: [B, Lt], lmLabelIds: [B, Lt], isNext: [B],
    inputIdsPv: [B, Lp], inputMaskPv: [B, Lp], segmentIdsPv: [B, Lp], lmLabelIdsPv: [B, Lp], isNextPvV: [B], isNextPvT: [B],
    imageFeat: [B, R + 1, F], imageLoc: [B, R + 1, 5], imageTarget: [B, R, C], imageLabel: [B, R], imageMask: [B, R + 1],
    indexP: [B, P, 2], indexV: [B, P, 2],
  };
  const out = new Map<string, RawTensor>();
  for (const [field, name] of Object.entries(BATCH_FIELDS) as [keyof typeof BATCH_FIELDS, string][]) {
    const v = b[field];
    out.set(name, v instanceof Float32Array ? f32(shapes[field], v) : i64(shapes[field], v));
  }
  return out;
}

/**
 * @file The batch handed to the model: the tensors of k3m-reference.md 3.4, with the same names
 * in camelCase, as flat typed arrays plus the batch size. The golden `inputs.safetensors` holds
 * one such batch under the snake_case names ({@link BATCH_FIELDS} maps them).
 * Integers are Int32Array (the reference's int64 values all fit).
 */

/** Sizes that shape a batch; the reference's are 36, 48, 36, 10. */
export interface BatchShape {
  batchSize: number;
  /** Title length incl. [CLS]/[SEP] (reference 36). */
  titleLen: number;
  /** Knowledge (PV) length incl. [CLS]/[SEP] (reference 48). */
  pvLen: number;
  /** Region rows without the global row (reference 36). */
  regions: number;
  /** Region feature width (2048 for the bottom-up-attention detector). */
  featureDim: number;
  /** Detector classes, the masked-region target width (1601). */
  numClasses: number;
  /** Property-value index pairs per item (reference 10). */
  maxPairs: number;
}

export interface Batch {
  shape: BatchShape;
  /** [B, titleLen] */
  inputIds: Int32Array;
  inputMask: Int32Array;
  segmentIds: Int32Array;
  /** original id at masked positions, -1 elsewhere */
  lmLabelIds: Int32Array;
  /** [B] always 0 in the reference */
  isNext: Int32Array;
  /** [B, pvLen] */
  inputIdsPv: Int32Array;
  inputMaskPv: Int32Array;
  segmentIdsPv: Int32Array;
  lmLabelIdsPv: Int32Array;
  isNextPvV: Int32Array;
  isNextPvT: Int32Array;
  /** [B, regions + 1, featureDim], row 0 = global row */
  imageFeat: Float32Array;
  /** [B, regions + 1, 5], row 0 = [0,0,1,1,1] */
  imageLoc: Float32Array;
  /** [B, regions, numClasses] */
  imageTarget: Float32Array;
  /** [B, regions] 1 = masked region, -1 otherwise */
  imageLabel: Int32Array;
  /** [B, regions + 1] */
  imageMask: Int32Array;
  /** [B, maxPairs, 2] endpoint pairs, [0,0] padding */
  indexP: Int32Array;
  indexV: Int32Array;
  /** [B] */
  imageIds: string[];
}

/** Batch field to the reference's tensor name (as in the golden inputs.safetensors). */
export const BATCH_FIELDS = Object.freeze({
  inputIds: 'input_ids',
  inputMask: 'input_mask',
  segmentIds: 'segment_ids',
  lmLabelIds: 'lm_label_ids',
  isNext: 'is_next',
  inputIdsPv: 'input_ids_pv',
  inputMaskPv: 'input_mask_pv',
  segmentIdsPv: 'segment_ids_pv',
  lmLabelIdsPv: 'lm_label_ids_pv',
  isNextPvV: 'is_next_pv_v',
  isNextPvT: 'is_next_pv_t',
  imageFeat: 'image_feat',
  imageLoc: 'image_loc',
  imageTarget: 'image_target',
  imageLabel: 'image_label',
  imageMask: 'image_mask',
  indexP: 'index_p',
  indexV: 'index_v',
} as const);

/**
 * @file One training record as our trainer sees it: the 10 fields of the tensorpack datapoint
 * (k3m-reference.md 2.5) in decoded form, plus the extra fields of formats other than K3M's.
 * The on-disk layout lives in the codecs.
 */
import type { ItemExtra } from '@k3m-kit/raw-ingest';

export interface K3mRecord {
  /** [numBoxes, featureDim] (widened to float32 when stored as float16) */
  features: Float32Array;
  /** [numBoxes, numClasses]; empty (length 0) when written with --no-cls-prob */
  clsProb: Float32Array;
  /** [numBoxes, 4] x1, y1, x2, y2 in raw pixels */
  boxes: Float32Array;
  /** 0 for an image-missing item */
  numBoxes: number;
  imageH: number;
  imageW: number;
  imageId: string;
  /** title; '' when empty */
  caption: string;
  /** cleaned knowledge `p:v;p:v;`; '' when the item has none */
  pv: string;
  category: string;
  featureDim: number;
  /** 0 when written with --no-cls-prob */
  numClasses: number;
  /** P9D domain, Product1M instance labels, TaiSu caption source (raw-ingest's sidecar); absent for K3M input. */
  extra?: ItemExtra;
}

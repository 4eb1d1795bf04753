/**
 * @file Detector presets (a frozen registry, one row per preset). Every preset has the
 * bottom-up-attention topology of `VG-Detection/faster_rcnn_R_101_C4_caffe.yaml`; the small ones
 * only have fewer blocks, narrower layers and fewer test-time proposals, and `small-c4-2048`
 * runs res5 as detectron2's standard C4 head (stride 2) to keep its 2048-wide res5 cheap.
 * `bua-r101-c4` and `small-c4-2048` write what K3M's loader reads (2048-d features, 1601
 * classes); `small-c4` writes 256-d features over 101 classes, which it cannot read.
 */
import { BUA_DIMS } from '../codecs/feature-tsv.ts';

export interface DetectorConfig {
  /** Channels out of the 7x7 stem convolution. */
  stemChannels: number;
  /** Bottleneck blocks in res2, res3, res4, res5. */
  blocks: readonly [number, number, number, number];
  /** Inner (bottleneck) width of res2..res5. */
  bottleneck: readonly [number, number, number, number];
  /** Output width of res2..res5; res5's is the feature width. */
  out: readonly [number, number, number, number];
  /** Channels of the RPN's 3x3 convolution. */
  rpnChannels: number;
  /** Classifier width including background (detectron2 puts background last). */
  numClasses: number;
  /** Attribute scores of the optional attribute head (400 Visual Genome attributes + no-attribute, last). */
  numAttributes: number;
  anchorSizes: readonly number[];
  anchorRatios: readonly number[];
  /** Stride of res4, the map the RPN and ROIPool read. */
  featureStride: number;
  preNmsTopK: number;
  postNmsTopK: number;
  rpnNmsThresh: number;
  /** ROIPool output (14 in the C4 model). */
  poolSize: number;
  /**
   * detectron2 `RES5_DILATION`: 2 is the VG variant (res5 at stride 1 with dilated 3x3
   * convolutions, so it keeps the pooled 14x14); 1 is detectron2's standard C4 head (stride 2 on
   * res5's first 1x1 and shortcut, 7x7 after it, a quarter of the work).
   */
  res5Dilation: 1 | 2;
  /** Shorter side and cap on the longer side (detectron2 ResizeShortestEdge, test time). */
  minSize: number;
  maxSize: number;
}

const ANCHORS = { anchorSizes: [64, 128, 256, 512], anchorRatios: [0.5, 1, 2], featureStride: 16 } as const;

/** Presets by name. `bua-r101-c4` is the K3M detector and needs converted weights. */
export const PRESETS = Object.freeze({
  'bua-r101-c4': Object.freeze<DetectorConfig>({
    stemChannels: 64,
    blocks: [3, 4, 23, 3],
    bottleneck: [64, 128, 256, 512],
    out: [256, 512, 1024, 2048],
    rpnChannels: 512,
    numClasses: 1601,
    numAttributes: 401,
    ...ANCHORS,
    preNmsTopK: 6000,
    postNmsTopK: 300,
    rpnNmsThresh: 0.7,
    poolSize: 14,
    res5Dilation: 2,
    minSize: 800,
    maxSize: 1333,
  }),
  'small-c4': Object.freeze<DetectorConfig>({
    stemChannels: 16,
    blocks: [1, 1, 1, 1],
    bottleneck: [8, 16, 32, 32],
    out: [32, 64, 128, 256],
    rpnChannels: 64,
    numClasses: 101,
    numAttributes: 401,
    ...ANCHORS,
    preNmsTopK: 1000,
    postNmsTopK: 100,
    rpnNmsThresh: 0.7,
    poolSize: 14,
    res5Dilation: 2,
    minSize: 256,
    maxSize: 416,
  }),
  'small-c4-2048': Object.freeze<DetectorConfig>({
    stemChannels: 16,
    blocks: [1, 1, 1, 1],
    bottleneck: [8, 12, 16, 64],
    out: [32, 48, 64, 2048],
    rpnChannels: 64,
    numClasses: 1601,
    numAttributes: 401,
    ...ANCHORS,
    preNmsTopK: 1000,
    postNmsTopK: 100,
    rpnNmsThresh: 0.7,
    poolSize: 14,
    res5Dilation: 1,
    minSize: 256,
    maxSize: 416,
  }),
});
export type PresetName = keyof typeof PRESETS;

/** Test-time image sizes: K3M ran 800/1333; the original bottom-up-attention used 600/1000. */
export const IMAGE_SIZES = Object.freeze({
  '800': { minSize: 800, maxSize: 1333 },
  '600': { minSize: 600, maxSize: 1000 },
});

/**
 * Why K3M's loader cannot read rows of these widths, or undefined when it can: it fixes
 * `image_feature = np.zeros((region_len, 2048))` and a 1601-wide `image_target`.
 */
export function k3mIncompatibility(d: { featureDim: number; numClasses: number }): string | undefined {
  if (d.featureDim === BUA_DIMS.featureDim && d.numClasses === BUA_DIMS.numClasses) return undefined;
  return `${d.featureDim}-d features over ${d.numClasses} classes: the original K3M loader reads only ${BUA_DIMS.featureDim}-d features and ${BUA_DIMS.numClasses} class probabilities, so it cannot read these rows`;
}

/** Feature width and class count a preset writes (recorded in image_features/meta.json). */
export function presetDims(c: DetectorConfig): { featureDim: number; numClasses: number } {
  return { featureDim: c.out[3], numClasses: c.numClasses };
}

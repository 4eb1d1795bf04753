/**
 * @file Detector presets (a frozen registry, one row per preset). Every preset has the
 * bottom-up-attention topology of `VG-Detection/faster_rcnn_R_101_C4_caffe.yaml`; the small one
 * only has fewer blocks, narrower layers and fewer test-time proposals.
 */

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
  /** ROIPool output (14 in the C4 model; res5 keeps it at 14 in the VG variant). */
  poolSize: number;
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

/** Feature width and class count a preset writes (recorded in image_features/meta.json). */
export function presetDims(c: DetectorConfig): { featureDim: number; numClasses: number } {
  return { featureDim: c.out[3], numClasses: c.numClasses };
}

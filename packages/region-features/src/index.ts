/**
 * @file region-features' public API: the feature TSV codec, the safetensors codec, the
 * TensorFlow.js back-end choice that later stages import, and the detector, weights and
 * `extract` stage behind the CLI.
 */
export * from './codecs/feature-tsv.ts';
export * from '@k3m-kit/core';
export * from '@k3m-kit/core/backend';
export { decodeDetectron2Pickle, readDetectron2Pickle, PickleFormatError, type PickledArray } from './codecs/detectron2-pickle.ts';
export { PRESETS, IMAGE_SIZES, presetDims, k3mIncompatibility, type DetectorConfig, type PresetName } from './model/presets.ts';
export { ANCHOR_BUFFER, optionalParamShapes, paramShapes, randomParams, verifyParams, WeightsMismatchError, type Params, type ParamsFit } from './model/params.ts';
export { SELECTION_RULES, type SelectionRule } from './model/boxes.ts';
export { Detector, resizedSize, PIXEL_MEAN_BGR, type DetectorOutput } from './model/detector.ts';
export { decodeImage, ImageDecodeError, type DecodedImage } from './image.ts';
export { convertWeights, loadWeights, readWeights, randomInitNote, RANDOM_INIT_PRESETS, type LoadedWeights } from './weights.ts';
export { extractImage } from './extract-image.ts';
export { DetectorPool, WorkerError, type ImageResult } from './detector-pool.ts';
export { shareParams } from './shared-params.ts';
export {
  defaultWorkers,
  extract,
  InterruptedError,
  merge,
  mergeParts,
  reportTable,
  STAGE,
  type ExtractOptions,
  type ExtractReport,
} from './extract.ts';

/**
 * @file The workspace tools' library API: the embedded-sample generator (design.md section 9)
 * and what tests need to read its output back.
 */
export { makeSample, SAMPLE_DEFAULTS, type SampleOptions } from './sample/generate.ts';
export {
  FAULT_KINDS,
  FAULT_KIND_NAMES,
  FAULTS_FILE,
  PLACEHOLDER,
  faultCount,
  readFaults,
  type FaultKindName,
  type FaultRecord,
  type FaultsFile,
  type SampleExpectation,
  type SampleFile,
} from './sample/faults.ts';
export { BRANDS, CATEGORIES, COLOURS, COLOUR_NAMES, SHAPE_BY_VALUE, shapeFor, type Category, type ColourName, type Shape } from './sample/catalogue.ts';
export { MIN_PAIRS, MAX_PAIRS } from './sample/item.ts';
export { centreColour, nearestColour, MIN_SIDE, MAX_SIDE } from './sample/image.ts';

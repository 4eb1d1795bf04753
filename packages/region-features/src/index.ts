/**
 * @file region-features' public API: the feature TSV codec, the safetensors codec and the
 * TensorFlow.js back-end choice that later stages import.
 */
export * from './codecs/feature-tsv.ts';
export * from './codecs/safetensors.ts';
export * from './backend.ts';

/**
 * @file raw-ingest's public API: the segment codec later stages read, the raw TSV decoder,
 * the step-1 table codecs, and the stage itself (`buildData`, `mergeBuildData`).
 */
export * from './codecs/segment.ts';
export * from './codecs/raw-tsv.ts';
export * from './codecs/df-csv.ts';
export * from './codecs/field-json.ts';
export * from './codecs/segment-status.ts';
export * from './codecs/parse-summary.ts';
export { buildData, hashFraction, parseBuildDataConfig } from './build-data.ts';
export { mergeBuildData, reportTable, type BuildDataReport, type BuildDataResult, type RunInfo, type ImageCounts } from './finalize.ts';
export { BuildDataConfigSchema, MISSING_IMAGE_POLICIES, parseInputSpec, type BuildDataConfig, type BuildDataConfigInput, type InputSpec, type MissingImagePolicy } from './config.ts';
export { ImageSource, resolveImageRef, type FetchOptions, type FetchResult, type NetworkDeps } from './image-source.ts';
export { verifyImage, targetSize, isStoredImageValid, storedImageSize, type ImageOptions, type VerifyResult } from './image-verify.ts';

/**
 * @file raw-ingest's public API: the segment codec and its extra-field sidecar that later stages
 * read, the input-format codecs (K3M raw TSV, P9D JSON, Product1M text, TaiSu captions and
 * archives), the step-1 table codecs, and the stage itself (`buildData`, `mergeBuildData`).
 */
export * from './codecs/segment.ts';
export * from './codecs/item-extra.ts';
export * from './codecs/raw-tsv.ts';
export * from './codecs/p9d-json.ts';
export * from './codecs/product1m-txt.ts';
export * from './codecs/taisu-captions.ts';
export * from './codecs/taisu-archive.ts';
export * from './codecs/df-csv.ts';
export * from './codecs/field-json.ts';
export * from './codecs/segment-status.ts';
export * from './codecs/parse-summary.ts';
export { buildData, parseBuildDataConfig } from './build-data.ts';
export { hashFraction } from './segment-plan.ts';
export { mergeBuildData, reportTable, type BuildDataReport, type BuildDataResult, type RunInfo, type ImageCounts } from './finalize.ts';
export { BuildDataConfigSchema, MISSING_IMAGE_POLICIES, type BuildDataConfig, type BuildDataConfigInput, type MissingImagePolicy } from './config.ts';
export { CAPTION_CHOICES, parseInputSpec, type CaptionChoice, type InputSpec, type Position } from './sources/source.ts';
export { FORMATS, resolveFormat, sniffFormat, type InputFormat } from './sources/formats.ts';
export { ImageSource, resolveImageRef, type FetchOptions, type FetchResult, type NetworkDeps } from './image-source.ts';
export { verifyImage, targetSize, isStoredImageValid, storedImageSize, type ImageOptions, type VerifyResult } from './image-verify.ts';

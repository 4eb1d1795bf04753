/**
 * @file kg-triples' public API: `build` and `merge`, the knowledge reader later stages import
 * (`readKnowledge`, merge-joined with raw-ingest's `readItems` by order and image id), the
 * text-form codec, the cleaning steps and the OpenKE readers.
 */
export { build, type BuildRun } from './build.ts';
export { merge, pendingSegments, MERGE_OUTPUTS, REJECTS_FILE, type MergeRunOptions } from './merge.ts';
export * from './codecs/pv-string.ts';
export * from './codecs/knowledge-tsv.ts';
export * from './codecs/openke.ts';
export * from './codecs/triples-tsv.ts';
export { PARTS_DIR, partPaths, readPartMarker, type PartMarker, type SegmentStats } from './codecs/part.ts';
export {
  Cleaner,
  DEFAULT_NORMALISE,
  DEFAULT_PLACEHOLDERS,
  DROP_REASONS,
  STEPS,
  type CleanResult,
  type DropReason,
  type DroppedPair,
  type NormaliseOptions,
  type StepName,
  type StepStats,
} from './normalise.ts';
export {
  BuildOptionsSchema,
  MergeOptionsSchema,
  SegmentOptionsSchema,
  resolveOptions,
  type KgOptions,
  type MergeOptions,
  type SegmentOptions,
} from './options.ts';
export { cyrb53, holdoutSetOf, tripleHash, type HoldoutSet } from './holdout.ts';
export { processSegment, segmentFingerprint, type PairReject } from './segment-pass.ts';
export { STAGE, reportTable, shardReportTable, type Distribution, type KgReport, type KgShardReport } from './report.ts';

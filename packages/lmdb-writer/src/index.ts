/**
 * @file lmdb-writer's public API: `convert` and `merge` (the stage), the reader our trainer
 * uses (`RecordReader`, `shuffledIndices`, `verify`), the record type, and the codecs.
 */
export type { K3mRecord } from './codecs/record.ts';
export * from './convert.ts';
export * from './merge.ts';
export * from './codecs/record-reader.ts';
export { join, pvWithFinalSeparator, featureFiles, MISSING_IMAGE_POLICIES, type MissingImagePolicy, type KnowledgeEntry, type JoinEvent, type JoinOptions } from './join.ts';
export * from './codecs/msgpack-numpy.ts';
export * from './codecs/tensorpack-lmdb.ts';

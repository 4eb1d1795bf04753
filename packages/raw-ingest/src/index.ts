/**
 * @file raw-ingest's public API: the segment codec later stages read, and `buildData`.
 */
export * from './codecs/segment.ts';

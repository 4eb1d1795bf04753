/**
 * @file lmdb-writer's public API: the record type, the codecs, the reader for the trainer.
 */
export type { K3mRecord } from './record.ts';
export * from './codecs/msgpack-numpy.ts';
export * from './codecs/tensorpack-lmdb.ts';
export { LmdbFileReader, LmdbFileWriter, LmdbFormatError, PAGE_SIZE } from './codecs/lmdb-file.ts';

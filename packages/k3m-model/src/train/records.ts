/**
 * @file Training records from lmdb-writer's LMDB (design.md 4:
 * `image_lmdb_json/{training,validation}_feat_all.lmdb`), as a source the trainer can replay
 * once per epoch. Shuffling is the data pipeline's (a bounded buffer over this stream).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { RecordReader, type K3mRecord } from '@k3m-kit/lmdb-writer';

/** A finite, replayable record collection. */
export interface RecordSource {
  readonly length: number;
  /** One pass in stored order. */
  records(): AsyncIterable<K3mRecord>;
}

export const LMDB_FILES = Object.freeze({
  train: join('image_lmdb_json', 'training_feat_all.lmdb'),
  validation: join('image_lmdb_json', 'validation_feat_all.lmdb'),
});

export function lmdbSource(path: string): RecordSource {
  const reader = RecordReader.open(path);
  return {
    length: reader.length,
    async *records() {
      yield* reader;
    },
  };
}

/** The work directory's training and (when present) validation LMDB. */
export function workDirSources(workDir: string): { train: RecordSource; validation?: RecordSource; paths: string[] } {
  const train = join(workDir, LMDB_FILES.train);
  const val = join(workDir, LMDB_FILES.validation);
  return {
    train: lmdbSource(train),
    validation: existsSync(val) ? lmdbSource(val) : undefined,
    paths: existsSync(val) ? [train, val] : [train],
  };
}

/** An in-memory source (tests, small experiments). */
export function arraySource(records: readonly K3mRecord[]): RecordSource {
  return {
    length: records.length,
    async *records() {
      yield* records;
    },
  };
}

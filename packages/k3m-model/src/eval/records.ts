/**
 * @file The evaluation's records, streamed from lmdb-writer's LMDB: one pass counts what was
 * read and rejects what the model cannot read (as pretraining does), keeping only the positions
 * of the usable records; the items chosen for evaluation are then read by position when a task
 * needs them ({@link lmdbItems}). Memory does not grow with the LMDB: a position is a number,
 * a record is decoded for the moment it is used.
 */
import { RecordReader, type K3mRecord } from '@k3m-kit/lmdb-writer';
import { recordProblem, type ResolvedPreprocessOptions } from '../data/preprocess.ts';
import { infoOf, type ItemInfo, type Items } from './items.ts';

/** What one pass over an LMDB found. */
export interface LmdbScan {
  /** Records read (counted as they stream, not taken from the key list). */
  read: number;
  /** Positions (record indices) of the records the model can read, ascending. */
  usable: number[];
}

/**
 * Reads every record once through a reused buffer and sorts it into usable or rejected;
 * `rejectedByReason` is added to.
 */
export function scanLmdb(reader: RecordReader, dims: ResolvedPreprocessOptions, rejectedByReason: Record<string, number>): LmdbScan {
  const usable: number[] = [];
  let read = 0;
  for (let i = 0; i < reader.length; i++) {
    const why = recordProblem(reader.getTransient(i), dims);
    read++;
    if (why) rejectedByReason[why] = (rejectedByReason[why] ?? 0) + 1;
    else usable.push(i);
  }
  return { read, usable };
}

/**
 * The records at `positions` of an open LMDB as {@link Items}: their light fields are read now
 * (one pass), each record again whenever it is asked for. The reader must stay open while the
 * items are used.
 */
export function lmdbItems(reader: RecordReader, positions: readonly number[]): Items {
  const infos: ItemInfo[] = positions.map((p) => infoOf(reader.getTransient(p)));
  const position = (i: number) => {
    const p = positions[i];
    if (p === undefined) throw new RangeError(`item ${i} outside [0, ${positions.length})`);
    return p;
  };
  return {
    length: positions.length,
    get: (i): K3mRecord => reader.get(position(i)),
    info: (i) => {
      position(i);
      return infos[i]!;
    },
  };
}

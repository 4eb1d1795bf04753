/**
 * @file Reading the LMDB this package writes: records by index, a shuffled stream, and `verify`.
 */
import { Rng } from '@k3m-kit/core';
import { createHash } from 'node:crypto';
import { decodeRecord, MsgpackNumpyError } from './msgpack-numpy.ts';
import { recordKey, TensorpackLmdbReader } from './tensorpack-lmdb.ts';
import type { K3mRecord } from './record.ts';

export interface ShuffleOptions {
  /** Slots in the shuffle buffer (the reference uses 5000). */
  bufferSize?: number;
  seed?: number;
  /** Repeat the records forever, as the reference's training dataflow does. */
  repeat?: boolean;
}

/**
 * Record indices through a bounded shuffle buffer: the buffer fills with the next indices in
 * key order, and each step emits a random slot and refills it (k3m-reference.md 3.1). Only
 * indices are buffered, so memory does not grow with the record size.
 * @example [...shuffledIndices(10, { bufferSize: 4, seed: 1 })]
 */
export function* shuffledIndices(n: number, opts: ShuffleOptions = {}): Generator<number> {
  const size = Math.max(1, opts.bufferSize ?? 5000);
  const rng = new Rng(opts.seed ?? 42);
  if (n === 0) return;
  const buf: number[] = [];
  let next = 0;
  const pull = (): number | undefined => {
    if (next < n) return next++;
    if (!opts.repeat) return undefined;
    next = 1;
    return 0;
  };
  for (;;) {
    while (buf.length < size) {
      const i = pull();
      if (i === undefined) break;
      buf.push(i);
    }
    if (buf.length === 0) return;
    const j = rng.int(buf.length);
    const out = buf[j]!;
    const refill = pull();
    if (refill === undefined) {
      buf[j] = buf[buf.length - 1]!;
      buf.pop();
    } else buf[j] = refill;
    yield out;
  }
}

/** Random access to the records of one LMDB, decoded to {@link K3mRecord}. */
export class RecordReader {
  private constructor(private readonly store: TensorpackLmdbReader) {}

  /** Opens a tensorpack-layout LMDB (ours or one written by the Python pipeline). */
  static open(path: string): RecordReader {
    return new RecordReader(TensorpackLmdbReader.open(path));
  }

  get length(): number {
    return this.store.length;
  }

  get path(): string {
    return this.store.path;
  }

  /**
   * Record `i`. float32 arrays are views into the value buffer when aligned (always, for
   * records this package wrote with at most 127 boxes); float16 ones are widened.
   */
  get(i: number): K3mRecord {
    return decodeRecord(this.store.value(i)).record;
  }

  /**
   * Record `i` decoded from the buffer lmdb-js reuses for reads: its arrays are valid only
   * until the next LMDB read in this process. Faster than {@link get} for 36-box records (no fresh memory
   * per read), for callers that copy the arrays out at once (batch collation).
   */
  getTransient(i: number): K3mRecord {
    return decodeRecord(this.store.valueTransient(i)).record;
  }

  /** The raw msgpack value of record `i`. */
  value(i: number): Buffer {
    return this.store.value(i);
  }

  /** Records in key order. */
  *[Symbol.iterator](): Generator<K3mRecord> {
    for (let i = 0; i < this.length; i++) yield this.get(i);
  }

  /** Records through a bounded, seeded shuffle buffer ({@link shuffledIndices}). */
  *shuffled(opts: ShuffleOptions = {}): Generator<K3mRecord> {
    for (const i of shuffledIndices(this.length, opts)) yield this.get(i);
  }

  close(): void {
    this.store.close();
  }
}

export interface VerifyOptions {
  /** Random records to decode besides the expected ones. */
  sample?: number;
  seed?: number;
  /** sha1 of the values the writer wrote, by index: each is read back and compared. */
  expected?: ReadonlyMap<number, string>;
}

export interface VerifyResult {
  path: string;
  records: number;
  checked: number;
  problems: string[];
}

export const sha1 = (b: Uint8Array) => createHash('sha1').update(b).digest('hex');

/**
 * Reads back what was written: `__keys__` matches the entry count and the `%08d` keys, and
 * the sampled records decode (and hash as written, where `expected` says how).
 */
export function verify(path: string, opts: VerifyOptions = {}): VerifyResult {
  const problems: string[] = [];
  const store = TensorpackLmdbReader.open(path);
  try {
    const n = store.length;
    if (store.entries !== n + 1) problems.push(`${store.entries} entries for ${n} keys in __keys__ (expected keys + 1)`);
    for (let i = 0; i < n && problems.length < 10; i++) {
      if (store.keys[i] !== recordKey(i).toString('latin1')) problems.push(`__keys__[${i}] is ${store.keys[i]}`);
    }
    const rng = new Rng(opts.seed ?? 1);
    const picks = new Set<number>(opts.expected?.keys() ?? []);
    for (let s = 0; s < Math.min(opts.sample ?? 16, n); s++) picks.add(rng.int(n));
    for (const i of [...picks].sort((a, b) => a - b)) {
      try {
        const v = store.value(i);
        const want = opts.expected?.get(i);
        if (want && sha1(v) !== want) problems.push(`record ${i}: bytes differ from what was written`);
        decodeRecord(v);
      } catch (e) {
        if (!(e instanceof MsgpackNumpyError) && !(e instanceof RangeError)) throw e;
        problems.push(`record ${i}: ${e.message}`);
      }
    }
    return { path, records: n, checked: picks.size, problems };
  } finally {
    store.close();
  }
}

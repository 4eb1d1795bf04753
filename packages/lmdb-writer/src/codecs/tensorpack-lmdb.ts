/**
 * @file tensorpack 0.9.4 `LMDBSerializer` keys and store (design.md 6.3, k3m-reference.md 2.5).
 *
 * Keys: record i is stored under the 8-digit zero-padded ASCII index (`b'00000000'`, ...); the
 * key `b'__keys__'` holds the msgpack list of every record key (as bin). tensorpack reads the
 * key list from `__keys__` and counts records as `entries - 1`, so a finished database holds
 * nothing else. While a conversion runs, each commit also carries `__progress__` (JSON: what
 * is being built and how far); it is replaced by `__keys__` in the final commit. Both sort
 * after every digit key ('_' > '9'), which the append-only file writer relies on.
 *
 * Values are opaque here (see msgpack-numpy.ts); the file format is lmdb-file.ts.
 */
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { decodeBinList, encodeBinList } from './msgpack-numpy.ts';
import { LmdbFileReader, LmdbFileWriter, LmdbFormatError } from './lmdb-file.ts';

export const KEYS_KEY = Buffer.from('__keys__');
export const PROGRESS_KEY = Buffer.from('__progress__');
/** `%08d` stops sorting in index order at 10^8 records. */
export const MAX_RECORDS = 100_000_000;

/**
 * The key of record `i`.
 * @example recordKey(7).toString() // '00000007'
 */
export function recordKey(i: number): Buffer {
  if (!Number.isInteger(i) || i < 0 || i >= MAX_RECORDS) throw new RangeError(`record index ${i} outside [0, ${MAX_RECORDS})`);
  return Buffer.from(String(i).padStart(8, '0'), 'ascii');
}

/** The `__keys__` value for `n` records. */
export function encodeKeys(n: number): Buffer {
  return encodeBinList(Array.from({ length: n }, (_, i) => recordKey(i)));
}

export function decodeKeys(value: Uint8Array): string[] {
  return decodeBinList(value);
}

/** What a partial database says about itself. */
export interface Progress {
  /** Hash of the inputs and options the database is being built from. */
  fingerprint: string;
  /** Records committed (keys 0 .. records-1). */
  records: number;
  /** image_id of the last committed record, to check that a replay lines up. */
  lastImageId: string;
  [extra: string]: unknown;
}

/**
 * Writes records under consecutive keys; `commit` stores a progress marker in the same
 * transaction; `finish` writes `__keys__` and renames the partial file into place.
 */
export class TensorpackLmdbWriter {
  private constructor(
    private readonly file: LmdbFileWriter,
    readonly partialPath: string,
    readonly finalPath: string,
    /** Records already in the file when it was opened (a resumed run). */
    readonly resumedFrom: number,
  ) {}

  /**
   * Opens `<finalPath>.partial`: resumes it when its progress marker carries `fingerprint`,
   * otherwise starts it afresh. Returns the writer and the marker it resumed from.
   */
  static open(finalPath: string, fingerprint: string): { writer: TensorpackLmdbWriter; progress?: Progress } {
    const partial = `${finalPath}.partial`;
    mkdirSync(dirname(partial), { recursive: true });
    if (existsSync(partial)) {
      let progress: Progress | undefined;
      try {
        const r = LmdbFileReader.open(partial);
        try {
          const v = r.get(PROGRESS_KEY);
          progress = v ? (JSON.parse(v.toString('utf8')) as Progress) : undefined;
          if (progress && r.meta.entries !== progress.records + 1) progress = undefined;
        } finally {
          r.close();
        }
      } catch {
        progress = undefined;
      }
      if (progress?.fingerprint === fingerprint) {
        const file = LmdbFileWriter.resume(partial, (k) => !k.equals(PROGRESS_KEY));
        return { writer: new TensorpackLmdbWriter(file, partial, finalPath, file.count), progress };
      }
    }
    return { writer: new TensorpackLmdbWriter(LmdbFileWriter.create(partial), partial, finalPath, 0) };
  }

  /** Records put so far (committed or not). */
  get count(): number {
    return this.file.count;
  }

  /** Appends the next record's value. */
  append(value: Uint8Array): number {
    const i = this.file.count;
    this.file.put(recordKey(i), value);
    return i;
  }

  /** Makes the records so far durable, with `progress` in the same transaction. */
  commit(progress: Progress): void {
    this.file.commit([{ key: PROGRESS_KEY, value: Buffer.from(JSON.stringify(progress)) }]);
  }

  /** Final commit with `__keys__`, then the partial file (and its lock) takes the final name. */
  finish(): void {
    const n = this.file.count;
    this.file.put(KEYS_KEY, encodeKeys(n));
    this.file.commit();
    this.file.close();
    rmSync(this.finalPath, { force: true });
    renameSync(this.partialPath, this.finalPath);
    rmSync(`${this.partialPath}-lock`, { force: true });
    rmSync(`${this.finalPath}-lock`, { force: true });
    // LMDB initialises an empty lock file on first open; tensorpack opens without locking.
    LmdbFileWriter.touchLock(this.finalPath);
  }

  /** Closes without finishing (the partial file stays resumable up to its last commit). */
  abandon(): void {
    this.file.close();
  }
}

/** Reads a tensorpack-layout LMDB: key list from `__keys__`, values by index. */
export class TensorpackLmdbReader {
  readonly keys: string[];

  private constructor(private readonly file: LmdbFileReader) {
    const kv = file.get(KEYS_KEY);
    if (kv) this.keys = decodeKeys(kv);
    else {
      // tensorpack falls back to every key when `__keys__` is absent.
      this.keys = [];
      for (const n of file.nodes()) this.keys.push(n.key.toString('latin1'));
    }
  }

  static open(path: string): TensorpackLmdbReader {
    if (!existsSync(path)) throw new LmdbFormatError(path, 'no such file');
    return new TensorpackLmdbReader(LmdbFileReader.open(path));
  }

  get path(): string {
    return this.file.path;
  }

  /** LMDB entries (records plus `__keys__`), as tensorpack's `txn.stat()['entries']`. */
  get entries(): number {
    return this.file.meta.entries;
  }

  get length(): number {
    return this.keys.length;
  }

  /**
   * The value of record `i` in its own buffer (4-byte aligned start), or in `scratch` when it
   * is large enough (valid until the caller reuses `scratch`).
   */
  value(i: number, scratch?: Buffer): Buffer {
    const key = this.keys[i];
    if (key === undefined) throw new RangeError(`record ${i} outside [0, ${this.keys.length})`);
    const v = this.file.get(Buffer.from(key, 'latin1'), scratch);
    if (!v) throw new LmdbFormatError(this.file.path, `key ${key} listed in __keys__ is missing`);
    return v;
  }

  close(): void {
    this.file.close();
  }
}

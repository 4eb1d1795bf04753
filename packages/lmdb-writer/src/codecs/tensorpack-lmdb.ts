/**
 * @file tensorpack 0.9.4 `LMDBSerializer` keys and store (design.md 6.3, k3m-reference.md 2.5),
 * on LMDB itself through lmdb-js.
 *
 * Keys: record i is stored under the 8-digit zero-padded ASCII index (`b'00000000'`, ...); the
 * key `b'__keys__'` holds the msgpack list of every record key (as bin). tensorpack reads the
 * key list from `__keys__` and counts records as `entries - 1`, so a finished database holds
 * nothing else. While a conversion runs, each commit also carries `__progress__` (JSON: what
 * is being built and how far) in the same transaction; it is replaced by `__keys__` in the
 * final commit. Values are opaque here (see msgpack-numpy.ts).
 *
 * The file: single-file LMDB (`subdir=False`: `X.lmdb` and `X.lmdb-lock`) in LMDB data format 1,
 * the format liblmdb 0.9 (Debian's python3-lmdb, so tensorpack) reads. lmdb-js's prebuilt
 * binaries write format 2; the workspace's install builds it from source for format 1
 * (scripts/build-lmdb.js), and every open checks the file's format, so a format-2 build fails
 * loudly instead of writing files Python cannot open.
 *
 * lmdb-js options and why: `keyEncoding: 'binary'` (keys are the raw ASCII bytes Python
 * expects; lmdb-js's default ordered-binary would add type tags), `encoding: 'binary'` (values
 * are our msgpack bytes, stored as given), no `compression` (lmdb-js's LZ4 frames would be
 * opaque to Python), no `useWritemap` (liblmdb 0.9 then truncates the file to the whole map
 * size), LMDB's default durable commits (one fdatasync per transaction). Values are written
 * by lmdb-js's write thread (asynchronous puts, batched into transactions by lmdb-js), so
 * LMDB's page copies, writes and syncs run on the second core while the caller decodes the
 * next records; see {@link TensorpackLmdbWriter}. The map size is a 1 TiB
 * reservation of address space, not of disk (the reference opens with 2 TiB): liblmdb 0.9
 * cannot grow the map during a write, and lmdb-js only remaps with LMDB 1.x.
 */
import { closeSync, existsSync, mkdirSync, openSync, readSync, renameSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { IoError, keepFreedMemory, LMDB_WRITER_MALLOC } from '@k3m-kit/core';
import { open, type RootDatabase } from 'lmdb';
import { decodeBinList, encodeBinList } from './msgpack-numpy.ts';

export const KEYS_KEY = Buffer.from('__keys__');
export const PROGRESS_KEY = Buffer.from('__progress__');
/** `%08d` stops sorting in index order at 10^8 records. */
export const MAX_RECORDS = 100_000_000;
/** The LMDB data format liblmdb 0.9 reads. */
export const LMDB_DATA_FORMAT = 1;
/** Address space reserved for a database being written. */
export const MAP_SIZE = 2 ** 40;
/**
 * Appended values are copied into arenas of this size, which lmdb-js's write thread reads from;
 * {@link ARENAS} of them bound the memory of values waiting to be written.
 */
export const WRITE_CHUNK_BYTES = 16 << 20;
/** Arenas in the ring: one filling while the others are written. */
export const ARENAS = 3;

const MDB_MAGIC = 0xbeefc0de;
const HOW_TO_BUILD = 'run `npm ci` (its postinstall builds lmdb-js for data format 1) or `node packages/lmdb-writer/scripts/build-lmdb.js`';

/** A file this store cannot use (an I/O error with its path: exit 1, one line). */
export class LmdbFormatError extends IoError {
  override name = 'LmdbFormatError';
}

/**
 * The LMDB data format of a file, from its first meta page (the page header before it is 16
 * bytes in format 1, 24 in format 2); undefined when the file is no LMDB.
 */
export function lmdbDataFormat(path: string): number | undefined {
  const head = Buffer.alloc(32);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  for (const at of [16, 24]) if (head.readUInt32LE(at) === MDB_MAGIC) return head.readUInt32LE(at + 4);
  return undefined;
}

type Db = RootDatabase<Buffer, Buffer>;

function openDb(path: string, readOnly: boolean): Db {
  let db: Db;
  try {
    db = open<Buffer, Buffer>({ path, noSubdir: true, keyEncoding: 'binary', encoding: 'binary', compression: false, readOnly, ...(readOnly ? {} : { mapSize: MAP_SIZE}) });
  } catch (e) {
    // Each build refuses the other format's files (MDB_VERSION_MISMATCH / MDB_INVALID).
    const format = existsSync(path) ? lmdbDataFormat(path) : undefined;
    const hint =
      format === LMDB_DATA_FORMAT
        ? `; lmdb-js may be its prebuilt (format 2) binary: ${HOW_TO_BUILD}`
        : format !== undefined
          ? `; the file is LMDB data format ${format}, Python's lmdb (liblmdb 0.9) reads only format ${LMDB_DATA_FORMAT}`
          : '';
    throw new LmdbFormatError(path, `${(e as Error).message}${hint}`);
  }
  const format = lmdbDataFormat(path);
  if (format !== LMDB_DATA_FORMAT) {
    void db.close();
    const why =
      format === undefined
        ? 'not an LMDB file'
        : readOnly
          ? `LMDB data format ${format}; tensorpack's Python lmdb (liblmdb 0.9) reads only format ${LMDB_DATA_FORMAT}`
          : `lmdb-js wrote LMDB data format ${format}, which Python's lmdb (liblmdb 0.9) cannot open: it is the prebuilt binary; ${HOW_TO_BUILD}`;
    throw new LmdbFormatError(path, why);
  }
  return db;
}

function removeDb(path: string): void {
  rmSync(path, { force: true });
  rmSync(`${path}-lock`, { force: true });
}

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

function readProgress(db: Db): Progress | undefined {
  const v = db.getBinary(PROGRESS_KEY);
  if (!v) return undefined;
  try {
    const p = JSON.parse(v.toString('utf8')) as Progress;
    return typeof p.fingerprint === 'string' && Number.isInteger(p.records) ? p : undefined;
  } catch {
    return undefined;
  }
}

/** A buffer appended values are copied into, and the last write that reads from it. */
interface Arena {
  bytes: Buffer;
  used: number;
  last?: Promise<unknown>;
}

/**
 * Writes records under consecutive keys; `commit` stores a progress marker after them and waits
 * until it is durable; `finish` writes `__keys__` and renames the partial file into place.
 *
 * Writes are asynchronous puts: lmdb-js's write thread groups them into transactions and
 * commits them in order, so a marker is never durable before the records it covers. Each value
 * is copied into an arena (values larger than an arena get their own copy) and the caller may
 * reuse its buffer as soon as `append` returns; `append` waits when every arena still has
 * writes in flight. A kill loses only what no durable marker covers, and `open` drops it.
 * A failed write fails the next call.
 */
export class TensorpackLmdbWriter {
  private readonly arenas: Arena[] = Array.from({ length: ARENAS }, () => ({ bytes: Buffer.allocUnsafeSlow(WRITE_CHUNK_BYTES), used: 0 }));
  private arena = 0;
  private written: number;
  private last: Promise<unknown> = Promise.resolve();
  private failure: Error | undefined;

  private constructor(
    private readonly db: Db,
    readonly partialPath: string,
    readonly finalPath: string,
    /** Records already in the file when it was opened (a resumed run). */
    readonly resumedFrom: number,
  ) {
    this.written = resumedFrom;
  }

  /**
   * Opens `<finalPath>.partial`: resumes it when its progress marker carries `fingerprint`,
   * otherwise starts it afresh. Returns the writer and the marker it resumed from.
   */
  static open(finalPath: string, fingerprint: string): { writer: TensorpackLmdbWriter; progress?: Progress } {
    // LMDB mallocs every transaction's pages afresh: keep glibc from handing them back (core's malloc.ts).
    keepFreedMemory(LMDB_WRITER_MALLOC);
    const partial = `${finalPath}.partial`;
    mkdirSync(dirname(partial), { recursive: true });
    if (existsSync(partial)) {
      let db: Db | undefined;
      try {
        db = openDb(partial, false);
      } catch (e) {
        // A format-1 file this build cannot open is kept (its commits may be resumable later).
        if (lmdbDataFormat(partial) === LMDB_DATA_FORMAT) throw e;
      }
      const progress = db && readProgress(db);
      if (db && progress?.fingerprint === fingerprint) {
        // Records written after the last marker are not covered by it: drop them.
        const stray = [...db.getKeys({ start: recordKey(progress.records), end: KEYS_KEY })];
        db.transactionSync(() => {
          for (const k of stray) db.removeSync(k);
        });
        return { writer: new TensorpackLmdbWriter(db, partial, finalPath, progress.records), progress };
      }
      if (db) void db.close();
      removeDb(partial);
    }
    try {
      return { writer: new TensorpackLmdbWriter(openDb(partial, false), partial, finalPath, 0) };
    } catch (e) {
      removeDb(partial); // a file in the wrong format, just created
      throw e;
    }
  }

  /** Records put so far (durable or not). */
  get count(): number {
    return this.written;
  }

  /** Appends the next record's value (copied: the buffer may be reused once this resolves). */
  async append(value: Uint8Array): Promise<number> {
    this.check();
    const i = this.written;
    if (value.length > WRITE_CHUNK_BYTES) {
      this.put(recordKey(i), Buffer.from(value));
    } else {
      let a = this.arenas[this.arena]!;
      if (a.used + value.length > WRITE_CHUNK_BYTES) {
        this.arena = (this.arena + 1) % ARENAS;
        a = this.arenas[this.arena]!;
        await a.last; // its values are written: it can be filled again
        this.check();
        a.used = 0;
      }
      const copy = a.bytes.subarray(a.used, a.used + value.length);
      copy.set(value);
      a.used += value.length;
      a.last = this.put(recordKey(i), copy);
    }
    this.written++;
    return i;
  }

  /** Puts `progress` after the records so far and waits until both are durable. */
  async commit(progress: Progress): Promise<void> {
    await this.put(PROGRESS_KEY, Buffer.from(JSON.stringify(progress)));
    this.check();
  }

  /** Final commit with `__keys__`, then the partial file takes the final name. */
  async finish(): Promise<void> {
    this.put(KEYS_KEY, encodeKeys(this.written));
    await this.track(this.db.remove(PROGRESS_KEY));
    this.check();
    await this.close();
    removeDb(this.finalPath);
    renameSync(this.partialPath, this.finalPath);
    // The lock file belongs to the name LMDB was opened under; LMDB recreates it on open.
    rmSync(`${this.partialPath}-lock`, { force: true });
  }

  /** Waits for the writes in flight and closes (the partial file stays resumable from its last marker). */
  async abandon(): Promise<void> {
    await this.close();
  }

  private put(key: Buffer, value: Buffer): Promise<unknown> {
    return this.track(this.db.put(key, value));
  }

  /** Remembers a write: the first failure fails every later call; `last` settles after all writes. */
  private track(p: Promise<unknown>): Promise<unknown> {
    const settled = p.catch((e: unknown) => {
      this.failure ??= e instanceof Error ? e : new Error(String(e));
    });
    this.last = settled;
    return settled;
  }

  private check(): void {
    if (this.failure) throw new IoError(this.partialPath, this.failure);
  }

  private async close(): Promise<void> {
    await this.last;
    await this.db.close();
  }
}

/** Reads a tensorpack-layout LMDB: key list from `__keys__`, values by index. */
export class TensorpackLmdbReader {
  readonly keys: string[];

  private constructor(
    private readonly db: Db,
    readonly path: string,
  ) {
    const kv = db.getBinary(KEYS_KEY);
    // tensorpack falls back to every key when `__keys__` is absent.
    this.keys = kv ? decodeKeys(kv) : [...db.getKeys()].map((k) => k.toString('latin1'));
  }

  static open(path: string): TensorpackLmdbReader {
    if (!existsSync(path)) throw new LmdbFormatError(path, 'no such file');
    return new TensorpackLmdbReader(openDb(path, true), path);
  }

  /** LMDB entries (records plus `__keys__`), as tensorpack's `txn.stat()['entries']`. */
  get entries(): number {
    return (this.db.getStats() as { entryCount: number }).entryCount;
  }

  get length(): number {
    return this.keys.length;
  }

  /** The value of record `i` in its own buffer (it starts 4-byte aligned). */
  value(i: number): Buffer {
    const v = this.db.getBinary(this.key(i));
    if (!v) throw new LmdbFormatError(this.path, `key ${this.keys[i]} listed in __keys__ is missing`);
    return v;
  }

  /**
   * The value of record `i` in the buffer lmdb-js reuses for reads (one per process): valid
   * only until the next LMDB read (no allocation per read).
   */
  valueTransient(i: number): Buffer {
    const v = this.db.getBinaryFast(this.key(i));
    if (!v) throw new LmdbFormatError(this.path, `key ${this.keys[i]} listed in __keys__ is missing`);
    // lmdb-js reports the value's size as `length`; the view ends there.
    return v.subarray(0, v.length);
  }

  private key(i: number): Buffer {
    const key = this.keys[i];
    if (key === undefined) throw new RangeError(`record ${i} outside [0, ${this.keys.length})`);
    return Buffer.from(key, 'latin1');
  }

  close(): void {
    void this.db.close();
  }
}

/**
 * @file The TaiSu captions, kept on disk while the archives stream by: the caption pass appends
 * each entry as one JSON line to a scratch file; memory holds only an id fingerprint table
 * (id → entry number), the byte offset of each entry (8 bytes) and one bit per entry saying
 * whether an archive member has claimed it. A lookup reads the entry's line back and checks its
 * id, so a fingerprint collision can never attach the wrong caption.
 */
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { FingerprintTable } from '../id-set.ts';

/** One stored entry: which captions file it came from and where, and its captions. */
export interface StoredCaptions {
  index: number;
  /** Index of the captions input among the run's captions inputs. */
  file: number;
  line: number;
  entry: number;
  id: string;
  w?: string;
  g?: string;
}

type Row = [file: number, line: number, entry: number, id: string, w: string | null, g: string | null];

const toRow = (c: Omit<StoredCaptions, 'index'>): Row => [c.file, c.line, c.entry, c.id, c.w ?? null, c.g ?? null];
const fromRow = (index: number, r: Row): StoredCaptions => ({
  index,
  file: r[0],
  line: r[1],
  entry: r[2],
  id: r[3],
  ...(r[4] !== null ? { w: r[4] } : {}),
  ...(r[5] !== null ? { g: r[5] } : {}),
});

export class CaptionStore {
  private readonly ids = new FingerprintTable(true);
  private offsets = new Float64Array(1 << 12);
  private claimed = new Uint8Array(1 << 9);
  private count = 0;
  private end = 0;
  private out: WriteStream | undefined;
  private fh: FileHandle | undefined;

  private constructor(private readonly path: string) {
    this.out = createWriteStream(path);
  }

  /** A new store writing its scratch file at `path` (replaced if it exists). */
  static create(path: string): CaptionStore {
    return new CaptionStore(path);
  }

  /** Whether an entry with this id is stored. */
  has(id: string): boolean {
    return this.ids.has(id);
  }

  /**
   * Appends an entry. Returns false (and stores nothing) when its id is already stored: the
   * first entry of an id wins.
   */
  async add(c: Omit<StoredCaptions, 'index'>): Promise<boolean> {
    if (!this.ids.add(c.id, this.count)) return false;
    const line = Buffer.from(JSON.stringify(toRow(c)) + '\n');
    if (this.count + 1 >= this.offsets.length) {
      const next = new Float64Array(this.offsets.length * 2);
      next.set(this.offsets);
      this.offsets = next;
    }
    this.offsets[this.count] = this.end;
    this.end += line.length;
    this.offsets[this.count + 1] = this.end;
    this.count++;
    if (!this.out!.write(line)) await new Promise<void>((r) => this.out!.once('drain', r));
    return true;
  }

  /** Ends the caption pass: flushes the scratch file and opens it for lookups. */
  async seal(): Promise<void> {
    await new Promise<void>((done, fail) => this.out!.once('error', fail).end(done));
    this.out = undefined;
    this.fh = await open(this.path, 'r');
    this.claimed = new Uint8Array(Math.ceil(this.count / 8) + 1);
  }

  /** The stored entry of `id`, or undefined. */
  async lookup(id: string): Promise<StoredCaptions | undefined> {
    const index = this.ids.get(id);
    if (index === undefined) return undefined;
    const start = this.offsets[index]!;
    const len = this.offsets[index + 1]! - start;
    const buf = Buffer.alloc(len);
    await this.fh!.read(buf, 0, len, start);
    const stored = fromRow(index, JSON.parse(buf.toString('utf8')) as Row);
    return stored.id === id ? stored : undefined;
  }

  /** Marks an entry as claimed by a member; false when a member claimed it before. */
  claim(index: number): boolean {
    const bit = 1 << (index & 7);
    if (this.claimed[index >> 3]! & bit) return false;
    this.claimed[index >> 3]! |= bit;
    return true;
  }

  /** The entries no member claimed, in the order they were added. */
  async *unclaimed(): AsyncGenerator<StoredCaptions> {
    const stream = createReadStream(this.path, { encoding: 'utf8' });
    const rl = createInterface({ input: stream, crlfDelay: Infinity });
    let index = 0;
    try {
      for await (const text of rl) {
        const i = index++;
        if (!(this.claimed[i >> 3]! & (1 << (i & 7)))) yield fromRow(i, JSON.parse(text) as Row);
      }
    } finally {
      rl.close();
      stream.destroy();
    }
  }

  async close(): Promise<void> {
    if (this.out) await new Promise<void>((r) => this.out!.end(r));
    await this.fh?.close();
  }
}

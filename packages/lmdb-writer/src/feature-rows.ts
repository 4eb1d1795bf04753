/**
 * @file Region-feature TSV rows for the join, decoded on worker threads.
 *
 * Per row, base64-decoding ~700 KB of text, checking every float and converting to float16 is
 * most of convert's CPU time, so {@link FeatureRowDecoder} can run it on worker threads (convert's
 * `defaultWorkers`: none on 2 cores, one per core but one above) while the main thread reads
 * lines, joins and packs the values (LMDB writes run on lmdb-js's own thread). The arrays come
 * back transferred, not copied. Lines come from the codec's `readFeatureLines` (as its
 * `readFeatureTsv` reads them) and each is decoded by the codec's `decodeFeatureLine`. Results
 * come back in file order whatever the number of workers, so the output is byte-identical to
 * decoding on the main thread (tested).
 *
 * Small runs never start a worker: rows are decoded on the main thread until
 * `workersAfterBytes` of lines have gone through (starting a worker costs about a second).
 *
 * A shard decodes only its own rows: each line's image id is read from its first field (the
 * codec's `featureLineImageId`) and the rows of other shards' segments are passed over
 * undecoded, so N shards together decode every row once, not N times.
 */
import { basename } from 'node:path';
import { Worker } from 'node:worker_threads';
import { ownsUnit, stopWorker, workerStarted, type Shard } from '@k3m-kit/core';
// The codec's own entry: the package index would load TensorFlow.js and sharp into every worker.
import { decodeFeatureLine, featureLineImageId, readFeatureLines, type ArrayAllocator, type FeatureDims } from '@k3m-kit/region-features/feature-tsv';
import { storedArrays, type RecordEncoding, type StoredArrays } from './codecs/msgpack-numpy.ts';

/** What every row of a run is decoded against. */
export interface RowOptions {
  dims: FeatureDims;
  maxBoxes: number;
  encoding: RecordEncoding;
}

/** A usable row's image fields and arrays, in the form they are stored in. */
export type StoredRow = StoredArrays & { imageW: number; imageH: number; numBoxes: number; boxes: Float32Array };

/** A row the join can place: its id, and its arrays or why the row is unusable. */
export type DecodedRow =
  | { ok: false; reason: string; detail: string; imageId?: string }
  | { ok: true; imageId: string; problem?: { reason: string; detail: string }; row?: StoredRow };

/** `<k>_s<seg>` → its parts, or undefined for an id that names no item position. */
export function parseImageId(id: string | undefined): { k: number; seg: number } | undefined {
  const m = id === undefined ? null : /^(\d+)_s(\d+)$/.exec(id);
  return m ? { k: Number(m[1]), seg: Number(m[2]) } : undefined;
}

/** Whether this shard accounts for a row: rows of its segments, and unplaceable rows on shard 0. */
export function ownsRow(imageId: string | undefined, segs: ReadonlySet<number>, shard: Shard): boolean {
  const p = parseImageId(imageId);
  if (p && segs.has(p.seg)) return ownsUnit(shard, p.seg);
  return shard.index === 0;
}

/** Whether every value is finite: v * 0 is 0 for finite v, NaN otherwise (unrolled: 2x a plain loop). */
function allFinite(a: Float32Array): boolean {
  let acc = 0;
  const n = a.length;
  let i = 0;
  for (; i + 4 <= n; i += 4) acc += a[i]! * 0 + a[i + 1]! * 0 + a[i + 2]! * 0 + a[i + 3]! * 0;
  for (; i < n; i++) acc += a[i]! * 0;
  return acc === 0;
}

function firstNonFinite(a: Float32Array): number | undefined {
  if (allFinite(a)) return undefined;
  for (let i = 0; i < a.length; i++) {
    const v = a[i]!;
    if (v - v !== 0) return v;
  }
  return undefined;
}

/**
 * One line: decoded by the codec, checked (too many boxes, NaN, infinity) and, when usable,
 * its arrays put in stored form.
 */
export function decodeRow(line: Uint8Array, o: RowOptions, pool?: BufferPool): DecodedRow {
  const d = decodeFeatureLine(line, o.dims, pool?.alloc);
  if (!d.ok) return { ok: false, reason: d.reason, detail: d.detail, imageId: d.imageId };
  const f = d.row;
  if (f.numBoxes > o.maxBoxes) return { ok: true, imageId: f.imageId, problem: { reason: 'too-many-boxes', detail: `num_boxes ${f.numBoxes} > ${o.maxBoxes}` } };
  for (const [name, a] of [['boxes', f.boxes], ['features', f.features], ['cls_prob', f.clsProb]] as const) {
    const v = firstNonFinite(a);
    if (v !== undefined) return { ok: true, imageId: f.imageId, problem: { reason: Number.isNaN(v) ? 'nan-value' : 'inf-value', detail: `${name} holds ${v}` } };
  }
  const stored = storedArrays({ ...f, numClasses: o.dims.numClasses }, o.encoding, pool?.alloc);
  // float16 (or no cls_prob) stores new arrays: the decoded ones can be reused at once.
  if (pool && stored.features !== f.features) pool.release(f.features.buffer);
  if (pool && stored.clsProb !== f.clsProb) pool.release(f.clsProb.buffer);
  return { ok: true, imageId: f.imageId, row: { ...stored, imageW: f.imageW, imageH: f.imageH, numBoxes: f.numBoxes, boxes: f.boxes } };
}

/**
 * ArrayBuffers of decoded rows, handed back once a row is packed and reused for the next rows
 * decoded on this thread: fresh ~0.5 MB buffers every row cost page faults and garbage
 * collections (external memory) that took a quarter of convert's time.
 */
export class BufferPool {
  private readonly free = new Map<number, ArrayBuffer[]>();

  constructor(private readonly perSize: number) {}

  readonly alloc: ArrayAllocator = (bytes) => this.free.get(bytes)?.pop() ?? (Buffer.allocUnsafeSlow(bytes).buffer as ArrayBuffer);

  release(buffer: ArrayBufferLike): void {
    if (!(buffer instanceof ArrayBuffer) || buffer.byteLength === 0) return;
    let list = this.free.get(buffer.byteLength);
    if (!list) this.free.set(buffer.byteLength, (list = []));
    if (list.length < this.perSize) list.push(buffer);
  }
}

/** The buffers of a row's arrays (each its own ArrayBuffer: the codec and toFloat16 allocate them). */
export function rowBuffers(r: DecodedRow): ArrayBuffer[] {
  return r.ok && r.row ? [r.row.features.buffer, r.row.clsProb.buffer, r.row.boxes.buffer] as ArrayBuffer[] : [];
}

/** One line of a feature file (a view into the read buffer, valid until the next line is read). */
export interface RawLine {
  bytes: Uint8Array;
  line: number;
  source: string;
}

/** The non-empty lines of the split's feature files in order, with 1-based line numbers (the codec's `readFeatureLines`). */
export async function* readRawLines(files: readonly string[]): AsyncGenerator<RawLine> {
  for (const path of files) {
    const source = basename(path);
    for await (const { bytes, line } of readFeatureLines(path)) yield { bytes, line, source };
  }
}

export interface DecoderOptions extends RowOptions {
  /** Worker threads; 0 decodes on the main thread. */
  workers: number;
  /** Bytes of lines decoded on the main thread before the workers start. */
  workersAfterBytes: number;
}

/** Line buffers kept for reuse (enough for every line in flight). */
const LINE_BUFFERS = 32;
/** Row arrays waiting to go back to a worker. */
const RETURNED_BUFFERS = 48;

interface Job {
  resolve: (r: DecodedRow) => void;
  reject: (e: Error) => void;
}

/** A pool of decoding threads; `decode` answers in any order, callers keep file order. */
export class FeatureRowDecoder {
  private readonly pool: Worker[] = [];
  /** Each worker's start: a thread is never terminated before it (core's threads.ts). */
  private readonly starts: Promise<void>[] = [];
  private readonly jobs = new Map<number, Job>();
  private nextId = 0;
  private inlineBytes = 0;
  private readonly buffers = new BufferPool(8);
  /** Row arrays handed back while workers run: they go to a worker with its next line, to decode into. */
  private readonly returns: ArrayBuffer[] = [];
  /** Buffers lines are copied into for a worker, back from the workers with their results. */
  private readonly lineBuffers: ArrayBuffer[] = [];
  private nDecoded = 0;
  private failure: Error | undefined;

  constructor(private readonly o: DecoderOptions) {}

  /** How many worker threads are running. */
  get threads(): number {
    return this.pool.length;
  }

  /** Lines handed to `decode` so far. */
  get decoded(): number {
    return this.nDecoded;
  }

  decode(line: RawLine): Promise<DecodedRow> {
    if (this.failure) return Promise.reject(this.failure);
    this.nDecoded++;
    if (this.o.workers <= 0 || this.inlineBytes < this.o.workersAfterBytes) {
      this.inlineBytes += line.bytes.byteLength;
      return Promise.resolve(decodeRow(line.bytes, this.o, this.buffers));
    }
    if (!this.pool.length) this.start();
    const id = this.nextId++;
    const worker = this.pool[id % this.pool.length]!;
    // The line's own copy, handed over (posting a view would copy its whole read buffer), in a
    // buffer that comes back with the result: fresh ~700 KB buffers cost a page fault every 4 KB.
    const n = line.bytes.byteLength;
    const bytes = new Uint8Array(this.lineBuffer(n), 0, n);
    bytes.set(line.bytes);
    const give = this.returns.splice(0);
    return new Promise<DecodedRow>((resolve, reject) => {
      this.jobs.set(id, { resolve, reject });
      worker.postMessage({ id, bytes, give }, [bytes.buffer, ...give]);
    });
  }

  private start(): void {
    // Only the row options travel: the caller's object may hold what cannot be cloned (the join's ledger and knowledge stream).
    const { workers, dims, maxBoxes, encoding } = this.o;
    const rowOptions: RowOptions = { dims, maxBoxes, encoding };
    for (let i = 0; i < workers; i++) {
      const w = new Worker(new URL('./tsx-worker.js', import.meta.url), {
        workerData: { module: new URL('./feature-row-worker.ts', import.meta.url).href, options: rowOptions },
      });
      this.starts.push(workerStarted(w, (m) => (m as { ready?: boolean }).ready === true));
      w.on('message', (m: { id: number; row: DecodedRow; line: ArrayBuffer } | { ready: true }) => {
        if ('ready' in m) return;
        if (this.lineBuffers.length < LINE_BUFFERS) this.lineBuffers.push(m.line);
        const job = this.jobs.get(m.id);
        this.jobs.delete(m.id);
        job?.resolve(m.row);
      });
      w.on('error', (e) => this.fail(new Error(`feature decoding worker ${i} failed: ${e.message}`, { cause: e })));
      w.on('exit', (code) => {
        if (code !== 0) this.fail(new Error(`feature decoding worker ${i} exited with code ${code}`));
      });
      this.pool.push(w);
    }
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const job of this.jobs.values()) job.reject(this.failure);
    this.jobs.clear();
  }

  /** Hands a row's arrays back once it is packed, for the next rows to be decoded into (here or on a worker). */
  release(row: DecodedRow): void {
    for (const b of rowBuffers(row)) {
      if (!this.pool.length) this.buffers.release(b);
      else if (this.returns.length < RETURNED_BUFFERS && b.byteLength > 0) this.returns.push(b);
    }
  }

  /** A buffer of at least `n` bytes for a line going to a worker: one back from a worker, or a new one. */
  private lineBuffer(n: number): ArrayBuffer {
    const i = this.lineBuffers.findIndex((b) => b.byteLength >= n);
    if (i >= 0) return this.lineBuffers.splice(i, 1)[0]!;
    // Room for somewhat longer lines (more boxes), so the buffer serves again.
    return new ArrayBuffer(Math.ceil((n * 1.25) / 65536) * 65536);
  }

  async close(): Promise<void> {
    this.failure ??= new Error('feature decoding closed');
    const starts = this.starts.splice(0);
    await Promise.all(this.pool.splice(0).map((w, i) => stopWorker(w, starts[i]!)));
  }
}

/**
 * The split's feature rows that `wanted` accepts (by image id), decoded, in file order, with at
 * most `ahead` lines in flight; the other rows are passed over undecoded.
 * @example for await (const r of decodedRows(files, decoder, 8, (id) => ownsRow(id, segs, shard))) ...
 */
export async function* decodedRows(
  files: readonly string[],
  decoder: FeatureRowDecoder,
  ahead: number,
  wanted: (imageId: string) => boolean,
): AsyncGenerator<DecodedRow & { line: number; source: string }> {
  const queue: Promise<DecodedRow & { line: number; source: string }>[] = [];
  try {
    for await (const raw of readRawLines(files)) {
      if (!wanted(featureLineImageId(raw.bytes))) continue;
      const { line, source } = raw;
      const p = decoder.decode(raw).then((r) => ({ ...r, line, source }));
      p.catch(() => undefined); // awaited below; this only keeps an early exit from crashing
      queue.push(p);
      if (queue.length >= ahead) yield await queue.shift()!;
    }
    while (queue.length) yield await queue.shift()!;
  } finally {
    queue.length = 0;
  }
}

/**
 * @file What the evaluation asks of a pretrained model: one frozen feature vector per record
 * (the concatenated pooled item, title, image and knowledge representations), plus a cache so
 * that an input the model has already seen is never encoded twice. Corruption at rate r changes
 * only a fraction r of the items, and a retrieval side that hides a modality makes many
 * corruptions collapse onto the same input, so the cache removes most of the grid's cost.
 * {@link encodeItems} reads and encodes items a chunk at a time, so records are never all held.
 */
import { createHash } from 'node:crypto';
import type { K3mRecord } from '@k3m-kit/lmdb-writer';
import type { Items } from './items.ts';
import type { Matrix } from './probe.ts';

/** A frozen model seen as a function from records to feature rows. */
export interface RepresentationEncoder {
  /** Width of a feature row. */
  readonly dim: number;
  /** Rows in record order. Deterministic: the same record always gives the same row. */
  encode(records: readonly K3mRecord[]): Promise<Matrix>;
}

/**
 * A content key: everything the model reads from a record. Two records with the same key get
 * the same representation, whichever item they came from.
 */
export function recordKey(r: K3mRecord): string {
  const h = createHash('sha1');
  h.update(r.caption).update('\u0000').update(r.pv).update('\u0000');
  h.update(`${r.numBoxes},${r.imageW},${r.imageH},${r.featureDim}\u0000`);
  h.update(new Uint8Array(r.features.buffer, r.features.byteOffset, r.features.byteLength));
  h.update(new Uint8Array(r.boxes.buffer, r.boxes.byteOffset, r.boxes.byteLength));
  return h.digest('base64');
}

/** Wraps an encoder with a content-keyed cache and counts what it actually encoded. */
export class CachedEncoder implements RepresentationEncoder {
  private readonly rows = new Map<string, Float32Array>();
  /** Records the wrapped encoder was asked to encode (cache misses). */
  encoded = 0;
  /** Records served from the cache. */
  hits = 0;

  constructor(
    private readonly inner: RepresentationEncoder,
    private readonly batchSize = 32,
  ) {}

  get dim(): number {
    return this.inner.dim;
  }

  async encode(records: readonly K3mRecord[]): Promise<Matrix> {
    const keys = records.map(recordKey);
    const missing: K3mRecord[] = [];
    const missingKeys: string[] = [];
    const queued = new Set<string>();
    keys.forEach((k, i) => {
      if (this.rows.has(k) || queued.has(k)) return;
      queued.add(k);
      missing.push(records[i]!);
      missingKeys.push(k);
    });
    this.hits += records.length - missing.length;
    for (let at = 0; at < missing.length; at += this.batchSize) {
      const chunk = missing.slice(at, at + this.batchSize);
      const m = await this.inner.encode(chunk);
      if (m.rows !== chunk.length || m.cols !== this.dim) {
        throw new Error(`encoder returned ${m.rows}x${m.cols} for ${chunk.length} records of width ${this.dim}`);
      }
      chunk.forEach((_, j) => this.rows.set(missingKeys[at + j]!, m.data.slice(j * m.cols, (j + 1) * m.cols)));
      this.encoded += chunk.length;
    }
    const data = new Float32Array(records.length * this.dim);
    keys.forEach((k, i) => data.set(this.rows.get(k)!, i * this.dim));
    return { data, rows: records.length, cols: this.dim };
  }
}

/** Records read and encoded at a time: the most records {@link encodeItems} holds. */
export const ENCODE_CHUNK = 32;

/**
 * Feature rows of every item, in order, reading and encoding `chunk` records at a time, so only
 * the rows are kept, never the records.
 */
export async function encodeItems(encoder: RepresentationEncoder, items: Items, chunk = ENCODE_CHUNK): Promise<Matrix> {
  const data = new Float32Array(items.length * encoder.dim);
  for (let at = 0; at < items.length; at += chunk) {
    const records: K3mRecord[] = [];
    for (let i = at; i < Math.min(at + chunk, items.length); i++) records.push(items.get(i));
    const m = await encoder.encode(records);
    if (m.rows !== records.length || m.cols !== encoder.dim) {
      throw new Error(`encoder returned ${m.rows}x${m.cols} for ${records.length} records of width ${encoder.dim}`);
    }
    data.set(m.data, at * encoder.dim);
  }
  return { data, rows: items.length, cols: encoder.dim };
}

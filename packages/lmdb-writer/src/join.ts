/**
 * @file The streaming join of item metadata, region features and knowledge by image id.
 *
 * All three come in manifest order (segments as listed in segments.json, items by `k` within
 * a segment; image-missing items have no feature row), so the join is a merge over positions
 * `(segment index, k)` that holds one row of each stream at a time. It yields each record's
 * value (its feature row's arrays, decoded on worker threads by feature-rows.ts, packed with
 * the item text) and, for what it cannot place, rejects with a reason:
 *
 * - `no-metadata`: a feature row whose id names no item of this split;
 * - `duplicate-id`: a second feature row, or a second item, with an id already seen;
 * - `out-of-order`: a feature row that arrives after its item was passed;
 * - the feature codec's reasons (`field-count`, `bad-base64`, `array-length`, ...), and
 *   `nan-value`, `inf-value`, `too-many-boxes` for a row; its item is then rejected too, as
 *   `feature-row-rejected`, so each input line has its own reject line;
 * - `bad-id`: an item whose id names no position `<k>_s<seg>` of its own segment;
 * - `image-missing`: only with `--missing-image drop`.
 *
 * Accounting: two ledgers, told of each input as it streams in (`read`). `items` counts the
 * items of this run's segments: each becomes one record or one reject line (`of: 'item'`).
 * `featureRows` counts the feature TSV rows this run owns (those of its segments; on shard 0
 * also those that fit no segment): each is carried by a record (one that is not
 * image-missing) or has its own reject line (`of: 'featureRow'`). Rows of other shards'
 * segments are passed over undecoded and counted by neither.
 *
 * Knowledge, when given (kg-triples' `readKnowledge`), is walked in lockstep with the items and
 * must match them id for id; a mismatch is an error (the kg/ output is stale), not a reject.
 *
 * Memory: one bit per item of the current split (to tell duplicates from strays), and the
 * feature rows in flight to the decoding threads.
 */
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { readItems, readManifest, type Split, type SegmentEntry } from '@k3m-kit/raw-ingest';
import { featureTsvPath, type FeatureDims } from '@k3m-kit/region-features/feature-tsv';
import { IoError, ownsUnit, type Ledger, type RejectRecord, type Shard } from '@k3m-kit/core';
import { encodeStoredRecord, storedArrays, type RecordEncoding } from './codecs/msgpack-numpy.ts';
import { decodedRows, FeatureRowDecoder, ownsRow, parseImageId, type DecodedRow } from './feature-rows.ts';

/** What to do with items that have no region features (design.md section 5). */
export const MISSING_IMAGE_POLICIES = Object.freeze({
  keep: 'write a record with num_boxes "0" and empty arrays',
  drop: 'leave the item out (the reference behaviour), counted as a reject',
});
export type MissingImagePolicy = keyof typeof MISSING_IMAGE_POLICIES;

/** One knowledge entry, in manifest order. */
export interface KnowledgeEntry {
  imageId: string;
  pv: string;
}

export interface JoinOptions {
  workDir: string;
  split: Split;
  dims: FeatureDims;
  maxBoxes: number;
  shard: Shard;
  missingImage: MissingImagePolicy;
  encoding: RecordEncoding;
  /** Threads decoding feature rows (0: the main thread) ... */
  workers: number;
  /** ... once this many bytes of rows were decoded on the main thread. */
  workersAfterBytes: number;
  /** Told of every item as it is read. */
  items: Ledger;
  /** Told of every feature row this run owns as it is read. */
  featureRows: Ledger;
  /** Filled in when the join ends: feature rows decoded (the others were passed over). */
  stats?: { featureRowsDecoded: number };
  /** Cleaned knowledge in manifest order; default: the segment's `pv` with a final `;`. */
  knowledge?: AsyncIterable<KnowledgeEntry>;
}

export type JoinEvent =
  /**
   * A record carries its item and, unless its image is missing, its feature row. `value` is
   * transient: valid until the next event is asked for (copy it to keep it).
   */
  | { kind: 'record'; value: Buffer; imageId: string; imageMissing: boolean }
  /** A reject line, of an item (a segment file's line) or of a feature row (a TSV line). */
  | { kind: 'reject'; of: 'item' | 'featureRow'; reject: RejectRecord };

/** The reference's PV text form for the model: `p:v;` per pair, so a final `;` is added. */
export function pvWithFinalSeparator(pv: string): string {
  return pv === '' || pv.endsWith(';') ? pv : `${pv};`;
}

interface Pos {
  seg: number;
  k: number;
}
const before = (a: Pos, b: Pos) => a.seg < b.seg || (a.seg === b.seg && a.k < b.k);
const same = (a: Pos, b: Pos) => a.seg === b.seg && a.k === b.k;

const parseId = parseImageId;

type FeatureLine = DecodedRow & { line: number; source: string };

/** The feature files of a split in order: `<split>.tsv.0`, `.1`, ... while they exist. */
export function featureFiles(workDir: string, split: Split): string[] {
  const out: string[] = [];
  for (let k = 0; existsSync(featureTsvPath(workDir, split, k)); k++) out.push(featureTsvPath(workDir, split, k));
  return out;
}

/**
 * Streams the joined records of one split (and the rejects) in manifest order.
 * @example for await (const ev of join({ workDir: 'work', split: 'train', ... })) ...
 */
export async function* join(o: JoinOptions): AsyncGenerator<JoinEvent> {
  const manifest = await readManifest(o.workDir);
  const segs = manifest.segments.filter((e) => e.split === o.split);
  const segIds = new Set(segs.map((e) => e.seg));
  const { dims, maxBoxes, encoding, workers, workersAfterBytes } = o;
  const decoder = new FeatureRowDecoder({ dims, maxBoxes, encoding, workers, workersAfterBytes });
  // Rows of other shards' segments are theirs; unplaceable rows are shard 0's, so N shards count them once.
  const rows = decodedRows(featureFiles(o.workDir, o.split), decoder, AHEAD, (id) => ownsRow(id, segIds, o.shard));
  try {
    yield* joinRows(o, segs, rows[Symbol.asyncIterator](), (r) => decoder.release(r));
  } finally {
    await decoder.close();
    if (o.stats) o.stats.featureRowsDecoded = decoder.decoded;
  }
}

/** Feature rows decoded ahead of the join: enough to keep every thread busy. */
const AHEAD = 16;

/** `release` takes back a row's arrays once its record is packed. */
async function* joinRows(o: JoinOptions, segs: SegmentEntry[], rows: AsyncIterator<FeatureLine>, release: (r: DecodedRow) => void): AsyncGenerator<JoinEvent> {
  // Position of a segment in manifest order; rows of segments owned by other shards are skipped.
  const order = new Map<number, { index: number; entry: SegmentEntry; owned: boolean }>();
  segs.forEach((e, index) => order.set(e.seg, { index, entry: e, owned: ownsUnit(o.shard, e.seg) }));
  const seen = segs.map((e) => new Uint8Array(Math.ceil((e.items + 1) / 8)));
  const mark = (p: Pos) => {
    const bits = seen[p.seg]!;
    if (p.k < bits.length * 8) bits[p.k >> 3]! |= 1 << (p.k & 7);
  };
  const wasSeen = (p: Pos) => {
    const bits = seen[p.seg]!;
    return p.k < bits.length * 8 && ((bits[p.k >> 3]! >> (p.k & 7)) & 1) === 1;
  };

  // A row with a position, or one that can never match (reject it when met).
  type Row = { line: FeatureLine; pos?: Pos };
  const nextRow = async (): Promise<Row | undefined> => {
    const r = await rows.next();
    if (r.done) return undefined;
    o.featureRows.read();
    const parsed = parseId(r.value.imageId);
    const seg = parsed && order.get(parsed.seg);
    return { line: r.value, pos: seg ? { seg: seg.index, k: parsed!.k } : undefined };
  };
  const rowReject = (reject: RejectRecord): JoinEvent => ({ kind: 'reject', of: 'featureRow', reject });
  const itemReject = (reject: RejectRecord): JoinEvent => ({ kind: 'reject', of: 'item', reject });
  const strayReject = (row: Row): RejectRecord => {
    const id = row.line.imageId;
    const base = { source: row.line.source, line: row.line.line, id };
    if (!row.line.ok && !row.pos) return { ...base, reason: row.line.reason, detail: row.line.detail };
    if (!row.pos) return { ...base, reason: 'no-metadata', detail: `no item ${id} in the ${o.split} segments` };
    if (wasSeen(row.pos)) return { ...base, reason: 'duplicate-id', detail: `a second feature row for ${id}` };
    return { ...base, reason: row.pos.k < (segs[row.pos.seg]!.items) ? 'out-of-order' : 'no-metadata', detail: `feature row for ${id} after its place in manifest order` };
  };

  // kg-triples' contract: one knowledge entry per item, in the same order, same image id.
  // Entries of segments another shard owns are passed over; anything else out of step fails.
  const know = o.knowledge?.[Symbol.asyncIterator]();
  const knowledgeFor = async (imageId: string, seg: number): Promise<string> => {
    for (;;) {
      const r = await know!.next();
      if (r.done) throw new IoError(`kg/ (${o.split})`, `knowledge ended before item ${imageId}: rerun kg-triples build`);
      const parsed = parseId(r.value.imageId);
      const owner = parsed && order.get(parsed.seg);
      if (owner && !owner.owned && parsed.seg !== seg) continue;
      if (r.value.imageId !== imageId) throw new IoError(`kg/ (${o.split})`, `knowledge entry ${r.value.imageId} where item ${imageId} was expected: rerun kg-triples build`);
      return r.value.pv;
    }
  };

  const empty = new Float32Array(0);

  let row = await nextRow();
  let last: Pos | undefined;
  for await (const item of readItems(o.workDir, o.split, (e) => ownsUnit(o.shard, e.seg))) {
    o.items.read();
    const source = basename(order.get(item.seg)!.entry.file);
    const parsed = parseId(item.imageId);
    const pos: Pos = { seg: order.get(item.seg)!.index, k: parsed?.k ?? -1 };
    // Knowledge has one entry per segment row, rejected rows included: consume it first.
    const pv = know ? await knowledgeFor(item.imageId, item.seg) : pvWithFinalSeparator(item.pv);
    const at = { source, line: item.line, id: item.imageId };
    // raw-ingest's extra fields (P9D domain, Product1M labels, TaiSu caption source) go into the record.
    const extra = item.extra ? { extra: item.extra } : {};
    if (!parsed || parsed.seg !== item.seg) {
      yield itemReject({ ...at, reason: 'bad-id', detail: `item id ${item.imageId} is not <k>_s${item.seg} (segment ${item.seg})` });
      continue;
    }
    if (last && !before(last, pos)) {
      yield itemReject({ ...at, reason: 'duplicate-id', detail: `item ${item.imageId} repeats or runs backwards in segment ${item.seg}` });
      continue;
    }
    last = pos;
    while (row && (!row.pos || before(row.pos, pos))) {
      yield rowReject(strayReject(row));
      row = await nextRow();
    }
    if (row && same(row.pos!, pos)) {
      const { line } = row;
      mark(pos);
      row = await nextRow();
      if (!line.ok || line.problem) {
        const problem = line.ok ? line.problem! : { reason: line.reason, detail: line.detail };
        yield rowReject({ source: line.source, line: line.line, id: item.imageId, ...problem });
        yield itemReject({ ...at, reason: 'feature-row-rejected', detail: `its feature row (${line.source} line ${line.line}) was rejected: ${problem.reason}` });
        continue;
      }
      // An owned, clean row comes with its arrays (decodeRow).
      const record = { ...line.row!, imageId: item.imageId, caption: item.title, pv, category: item.category, featureDim: o.dims.featureDim, ...extra };
      const value = encodeStoredRecord(record, { transient: true });
      release(line);
      yield { kind: 'record', value, imageId: item.imageId, imageMissing: false };
      continue;
    }
    if (o.missingImage === 'drop') {
      yield itemReject({ ...at, reason: 'image-missing', detail: item.pic ? `no feature row for ${item.pic}` : 'no image' });
      continue;
    }
    const record = { imageId: item.imageId, caption: item.title, pv, category: item.category, features: empty, clsProb: empty, boxes: empty, numBoxes: 0, imageH: 0, imageW: 0, featureDim: o.dims.featureDim, numClasses: o.dims.numClasses, ...extra };
    yield { kind: 'record', value: encodeStoredRecord({ ...record, ...storedArrays(record, o.encoding) }, { transient: true }), imageId: item.imageId, imageMissing: true };
  }
  while (row) {
    yield rowReject(strayReject(row));
    row = await nextRow();
  }
}

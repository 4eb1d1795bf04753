/**
 * @file The per-segment pass: one segment file in, its part files out (parse, clean, cap the
 * knowledge string). Independent of every other segment, so shards run it anywhere; the marker
 * is written last, so a crash leaves the segment to be redone.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { readSegmentFile, type SegmentEntry } from '@k3m-kit/raw-ingest';
import { AtomicWriter, Ledger, writeFileAtomic, type Progress, type RejectRecord } from '@k3m-kit/core';
import { BatchWriter } from './batch-writer.ts';
import { encodeKnowledgeLine } from './codecs/knowledge-tsv.ts';
import { encodePartMarker, partPaths, type PartMarker, type SegmentStats } from './codecs/part.ts';
import { formatPv, parsePv } from './codecs/pv-string.ts';
import { encodePartTripleLine } from './codecs/triples-tsv.ts';
import { Cleaner } from './normalise.ts';
import { normaliseOptionsOf, type SegmentOptions } from './options.ts';

/** A dropped pair in `rejects/kg-triples.jsonl`. */
export interface PairReject extends RejectRecord {
  property: string;
  value: string;
}

/** Identifies the options a part was made with; a part with another fingerprint is redone. */
export function segmentFingerprint(o: SegmentOptions): string {
  const key = JSON.stringify({ v: 1, ...normaliseOptionsOf(o), maxPairs: o.maxPairs });
  return createHash('sha256').update(key).digest('hex').slice(0, 16);
}

function bump(h: Map<number, number>, k: number): void {
  h.set(k, (h.get(k) ?? 0) + 1);
}

function histogram(h: Map<number, number>): Record<string, number> {
  return Object.fromEntries([...h.entries()].sort((a, b) => a[0] - b[0]).map(([k, v]) => [String(k), v]));
}

/**
 * Processes segment `entry` of `workDir` into `kg/parts/` and returns its marker. Its counts
 * come from a Ledger: the pairs of each row as the segment file is read (`pairsIn`), the pairs
 * written to the part triples (`pairsOut`) and the ones written to the part's reject file.
 */
export async function processSegment(
  workDir: string,
  entry: SegmentEntry,
  options: SegmentOptions,
  progress?: Progress,
): Promise<PartMarker> {
  const paths = partPaths(join(workDir, 'kg'), entry.seg);
  const cleaner = new Cleaner(normaliseOptionsOf(options));
  const triples = new BatchWriter(await AtomicWriter.create(paths.triples));
  const knowledge = new BatchWriter(await AtomicWriter.create(paths.knowledge));
  const rejects = new BatchWriter(await AtomicWriter.create(paths.rejects));
  const writers = [triples, knowledge, rejects];
  const ledger = new Ledger();
  const hIn = new Map<number, number>();
  const hOut = new Map<number, number>();
  const s = {
    items: 0,
    itemsWithoutKnowledge: 0,
    itemsEmptyAfterCleaning: 0,
    itemsWithRepeatedProperties: 0,
    repeatedPropertyTriples: 0,
    itemsTruncated: 0,
    pairsTruncated: 0,
  };
  try {
    for await (const row of readSegmentFile(join(workDir, entry.file))) {
      s.items++;
      if (row.pv === '') s.itemsWithoutKnowledge++;
      const parsed = parsePv(row.pv);
      ledger.read(parsed.length);
      const { kept, dropped } = cleaner.clean(parsed);
      bump(hIn, parsed.length);
      bump(hOut, kept.length);
      if (kept.length === 0) s.itemsEmptyAfterCleaning++;

      const valuesByProp = new Map<string, number>();
      for (const { p } of kept) valuesByProp.set(p, (valuesByProp.get(p) ?? 0) + 1);
      let repeated = 0;
      for (const n of valuesByProp.values()) if (n > 1) repeated += n - 1;
      if (repeated > 0) s.itemsWithRepeatedProperties++;
      s.repeatedPropertyTriples += repeated;

      let chunk = '';
      for (const { p, v } of kept) chunk += encodePartTripleLine({ imageId: row.imageId, itemId: row.itemId, line: row.line, p, v }) + '\n';
      if (chunk) await triples.write(chunk);
      ledger.wrote(kept.length);
      chunk = '';
      for (const d of dropped) {
        ledger.rejected(d.reason);
        const rec: PairReject = { source: entry.file, line: row.line, id: row.imageId, reason: d.reason, property: d.pair.p, value: d.pair.v };
        chunk += JSON.stringify(rec) + '\n';
      }
      if (chunk) await rejects.write(chunk);
      const shown = kept.slice(0, options.maxPairs);
      if (shown.length < kept.length) {
        s.itemsTruncated++;
        s.pairsTruncated += kept.length - shown.length;
      }
      await knowledge.write(encodeKnowledgeLine({ imageId: row.imageId, split: entry.split, itemId: row.itemId, pv: formatPv(shown) }) + '\n');
      progress?.increment();
    }
    for (const w of writers) await w.commit();
  } catch (e) {
    for (const w of writers) await w.abort();
    throw e;
  }
  const counts = ledger.counts();
  const stats: SegmentStats = {
    ...s,
    pairsIn: counts.in,
    pairsOut: counts.written,
    steps: cleaner.steps,
    rejectedByReason: counts.rejectedByReason,
    pairsPerItemIn: histogram(hIn),
    pairsPerItemOut: histogram(hOut),
  };
  const marker: PartMarker = {
    version: 1,
    fingerprint: segmentFingerprint(options),
    options,
    seg: entry.seg,
    split: entry.split,
    file: entry.file,
    stats,
  };
  await writeFileAtomic(paths.marker, encodePartMarker(marker));
  return marker;
}

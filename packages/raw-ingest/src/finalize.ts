/**
 * @file The end of build-data: reads what the segments left on disk (manifest, parse summary,
 * segment files, status files) and writes the split tables (`image_lmdb_json/df_*.csv`, the
 * per-field JSON), `rejects/build-data.jsonl` and `reports/build-data.json`. Because it reads
 * only files, a whole run and `merge` after N shards produce the same bytes. A shard alone
 * writes `reports/build-data.shard-i-of-N.json` and `rejects/build-data.shard-i-of-N.jsonl`.
 */
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { dfCsvFileName, encodeDfCsvHeader, encodeDfCsvRow } from './codecs/df-csv.ts';
import { JSON_FIELDS, encodeFieldJsonEnd, encodeFieldJsonEntry, fieldJsonFileName, type JsonField } from './codecs/field-json.ts';
import { parseRejectsPath, readParseSummary, type ParseSummary } from './codecs/parse-summary.ts';
import { MANIFEST_FILE, SPLITS, encodeManifest, readManifest, readSegmentFile, type SegmentEntry, type Split } from './codecs/segment.ts';
import { segmentStatusPath, streamSegmentStatus, type SegmentStatusHead } from './codecs/segment-status.ts';
import { positionFields } from './sources/source.ts';
import {
  AtomicWriter,
  writeFileAtomic,
  IoError,
  CappedCounter,
  finishReport,
  formatTable,
  writeReport,
  type StageReportBase,
  type TableRow,
  shardSuffix,
  ownsUnit,
  type Shard,
} from '@k3m-kit/core';

export const STAGE = 'build-data';
export const TABLE_DIR = 'image_lmdb_json';

/** What this invocation did (differs between a run and its resume, unlike everything else). */
export interface RunInfo {
  shard: string;
  segmentsProcessed: number;
  segmentsSkipped: number;
  imagesFetched: number;
  imagesReused: number;
  imagesFailed: number;
  imagesPerSecond: number;
  merged?: boolean;
}

/** A RunInfo with nothing done yet. */
export function emptyRunInfo(shard: string, merged?: true): RunInfo {
  return { shard, segmentsProcessed: 0, segmentsSkipped: 0, imagesFetched: 0, imagesReused: 0, imagesFailed: 0, imagesPerSecond: 0, ...(merged ? { merged } : {}) };
}

/** The parse pass's item-level counts, as every build-data report carries them. */
function parseCounts(summary: ParseSummary) {
  return {
    malformedPairsDropped: summary.malformedPairs,
    itemsWithMalformedPairs: summary.itemsWithMalformedPairs,
    emptyTitle: summary.emptyTitle,
    emptyKnowledge: summary.emptyKnowledge,
  };
}

export interface ImageCounts {
  ok: number;
  missing: number;
  missingByReason: Record<string, number>;
  /** Missing and dropped (`--missing-image drop`); also counted under rejected. */
  dropped: number;
  bytes: number;
}

export interface BuildDataReport extends StageReportBase {
  malformedPairsDropped: number;
  itemsWithMalformedPairs: number;
  emptyTitle: number;
  emptyKnowledge: number;
  splits: Record<Split, { segments: number; items: number }>;
  images: ImageCounts;
  run: RunInfo;
}

export interface BuildDataResult {
  report: BuildDataReport;
  reportPath: string;
  rejectsPath: string;
}

/** What the status files of some segments add up to. */
interface SegmentTally {
  images: ImageCounts;
  /** Rows written per segment (fewer than assigned with --missing-image drop). */
  kept: Map<number, number>;
  splits: BuildDataReport['splits'];
  /** Segments without a matching completion marker. */
  incomplete: number[];
}

/**
 * Reads the status files of `entries` one at a time (a status can list many image-missing
 * items, so they are never all in memory), adds up their counts and appends a reject line for
 * every dropped item to `rejects`, in segment order.
 */
async function tallySegments(workDir: string, entries: readonly SegmentEntry[], rejects: AtomicWriter): Promise<SegmentTally> {
  const reasons = new CappedCounter();
  const t: SegmentTally = { images: { ok: 0, missing: 0, missingByReason: {}, dropped: 0, bytes: 0 }, kept: new Map(), splits: { train: { segments: 0, items: 0 }, val: { segments: 0, items: 0 } }, incomplete: [] };
  for (const e of entries) {
    let head: SegmentStatusHead | undefined;
    try {
      for await (const x of streamSegmentStatus(segmentStatusPath(workDir, e.seg))) {
        if ('head' in x) {
          head = x.head;
          if (head.seg !== e.seg || head.items !== e.items || head.split !== e.split) break;
          continue;
        }
        const m = x.missing;
        reasons.add(m.reason);
        if (!m.dropped) continue;
        t.images.dropped++;
        const rec = { source: m.source, ...positionFields(m), reason: 'image-missing', detail: `${m.reason}: ${m.detail}`, id: m.itemId };
        await rejects.write(JSON.stringify(rec) + '\n');
      }
    } catch {
      head = undefined;
    }
    if (!head || head.seg !== e.seg || head.items !== e.items || head.split !== e.split) {
      t.incomplete.push(e.seg);
      continue;
    }
    t.images.ok += head.imagesOk;
    t.images.bytes += head.imageBytes;
    t.kept.set(head.seg, head.kept);
    t.splits[head.split].segments++;
    t.splits[head.split].items += head.kept;
  }
  t.images.missing = reasons.total;
  t.images.missingByReason = reasons.toJSON();
  return t;
}

/**
 * Finalizes a work dir whose segments are all complete: the whole-run ending, and `merge`
 * after shards. Throws an {@link IoError} naming the incomplete segments otherwise.
 */
export async function finalizeBuildData(opts: { workDir: string; run: RunInfo; seconds: number }): Promise<BuildDataResult> {
  const { workDir } = opts;
  const manifest = await readManifest(workDir);
  const summary = await readParseSummary(workDir);
  const rejectsPath = join(workDir, 'rejects', `${STAGE}.jsonl`);
  const rejects = await AtomicWriter.create(rejectsPath);
  let tally: SegmentTally;
  try {
    // Parse rejects in input order, then dropped items in segment order.
    for await (const chunk of createReadStream(parseRejectsPath(workDir))) await rejects.write(chunk as Buffer);
    tally = await tallySegments(workDir, manifest.segments, rejects);
  } catch (e) {
    await rejects.abort();
    throw e instanceof IoError ? e : new IoError(rejectsPath, e);
  }
  if (tally.incomplete.length > 0) {
    await rejects.abort();
    throw new IoError(workDir, `segments not complete: ${tally.incomplete.join(', ')} (run the shards that own them, then merge again)`);
  }
  // With --missing-image drop a segment file holds fewer rows than the parse pass assigned.
  const finalManifest = { ...manifest, segments: manifest.segments.map((e) => ({ ...e, items: tally.kept.get(e.seg)! })) };
  await writeFileAtomic(join(workDir, MANIFEST_FILE), encodeManifest(finalManifest));

  const splits = {} as BuildDataReport['splits'];
  for (const split of Object.keys(SPLITS) as Split[]) {
    const entries = finalManifest.segments.filter((e) => e.split === split);
    splits[split] = { segments: entries.length, items: await writeSplitTables(workDir, split, entries.map((e) => e.file)) };
  }
  await rejects.commit();

  const { images } = tally;
  const rejectedByReason = new CappedCounter();
  for (const [k, v] of Object.entries(summary.rejectedByReason)) rejectedByReason.add(k, v);
  if (images.dropped > 0) rejectedByReason.add('image-missing', images.dropped);
  const report: BuildDataReport = finishReport({
    stage: STAGE,
    in: summary.in,
    written: splits.train.items + splits.val.items,
    rejected: rejectedByReason.total,
    rejectedByReason: rejectedByReason.toJSON(),
    reconciles: false,
    seconds: opts.seconds,
    ...parseCounts(summary),
    splits,
    images,
    run: opts.run,
  });
  const reportPath = await writeReport(workDir, STAGE, report);
  return { report, reportPath, rejectsPath };
}

/** Writes df_<split>.csv and the five field files from the split's segment files; returns the row count. */
async function writeSplitTables(workDir: string, split: Split, files: string[]): Promise<number> {
  const dir = join(workDir, TABLE_DIR);
  const csv = await AtomicWriter.create(join(dir, dfCsvFileName(split)));
  const fields = Object.keys(JSON_FIELDS) as JsonField[];
  const json = await Promise.all(fields.map((f) => AtomicWriter.create(join(dir, fieldJsonFileName(f, split)))));
  const all = [csv, ...json];
  let n = 0;
  try {
    await csv.write(encodeDfCsvHeader());
    for (const file of files) {
      for await (const row of readSegmentFile(join(workDir, file))) {
        await csv.write(encodeDfCsvRow(n, row));
        for (let i = 0; i < fields.length; i++) {
          await json[i]!.write(encodeFieldJsonEntry(row.imageId, row[JSON_FIELDS[fields[i]!]], n === 0));
        }
        n++;
      }
    }
    for (const w of json) await w.write(encodeFieldJsonEnd(n));
    for (const w of all) await w.commit();
  } catch (e) {
    for (const w of all) await w.abort();
    throw e instanceof IoError ? e : new IoError(dir, e);
  }
  return n;
}

/**
 * A shard's own report and rejects: `in` counts the items of the segments it owns, `rejected`
 * those dropped for their image. The parse counts (the same in every shard) sit under `parse`;
 * the whole job's report comes from `merge`.
 */
export async function shardReport(opts: { workDir: string; shard: Shard; run: RunInfo; seconds: number; summary: ParseSummary }): Promise<BuildDataResult> {
  const { workDir, shard, summary } = opts;
  const name = `${STAGE}${shardSuffix(shard)}`;
  const rejectsPath = join(workDir, 'rejects', `${name}.jsonl`);
  const owned = (await readManifest(workDir)).segments.filter((e) => ownsUnit(shard, e.seg));
  const rejects = await AtomicWriter.create(rejectsPath);
  let tally: SegmentTally;
  try {
    tally = await tallySegments(workDir, owned, rejects);
    if (tally.incomplete.length > 0) throw new IoError(workDir, `segments of this shard not complete: ${tally.incomplete.join(', ')}`);
    await rejects.commit();
  } catch (e) {
    await rejects.abort();
    throw e instanceof IoError ? e : new IoError(rejectsPath, e);
  }
  const { images, splits } = tally;
  const report = finishReport({
    stage: STAGE,
    in: owned.reduce((a, e) => a + e.items, 0),
    written: splits.train.items + splits.val.items,
    rejected: images.dropped,
    rejectedByReason: (images.dropped > 0 ? { 'image-missing': images.dropped } : {}) as Record<string, number>,
    reconciles: false,
    seconds: opts.seconds,
    ...parseCounts(summary),
    splits,
    images,
    run: opts.run,
    parse: { in: summary.in, items: summary.items, rejectedByReason: summary.rejectedByReason },
  });
  const reportPath = await writeReport(workDir, name, report);
  return { report, reportPath, rejectsPath };
}

/** `raw-ingest merge`: finalizes after all shards have run. */
export function mergeBuildData(workDir: string): Promise<BuildDataResult> {
  const started = performance.now();
  const run = emptyRunInfo('merge', true);
  return finalizeBuildData({ workDir, run, seconds: 0 }).then(async (r) => {
    r.report.seconds = (performance.now() - started) / 1000;
    await writeReport(workDir, STAGE, r.report);
    return r;
  });
}

/** The readable table printed after a run. */
export function reportTable(r: BuildDataReport): string {
  const rows: TableRow[] = [
    ['in', r.in],
    ['written', r.written],
    ['rejected', r.rejected],
    ...Object.entries(r.rejectedByReason).map(([k, v]) => [`  rejected: ${k}`, v] as TableRow),
    ['reconciles', r.reconciles],
    ['train items', r.splits.train.items],
    ['val items', r.splits.val.items],
    ['malformed pairs dropped', r.malformedPairsDropped],
    ['empty titles (kept)', r.emptyTitle],
    ['empty knowledge (kept)', r.emptyKnowledge],
    ['images ok', r.images.ok],
    ['images missing', r.images.missing],
    ...Object.entries(r.images.missingByReason).map(([k, v]) => [`  missing: ${k}`, v] as TableRow),
    ['image MB', Math.round(r.images.bytes / 1e4) / 100],
    ['images fetched this run', r.run.imagesFetched],
    ['images reused (resume)', r.run.imagesReused],
    ['images/s', r.run.imagesPerSecond],
    ['seconds', r.seconds],
  ];
  return formatTable(STAGE, rows);
}

/**
 * @file The end of build-data: reads what the segments left on disk (manifest, parse summary,
 * segment files, status files) and writes the split tables (`image_lmdb_json/df_*.csv`, the
 * per-field JSON), `rejects/build-data.jsonl` and `reports/build-data.json`. Because it reads
 * only files, a whole run and `merge` after N shards produce the same bytes. A shard alone
 * writes `reports/build-data.shard-i-of-N.json` and `rejects/build-data.shard-i-of-N.jsonl`.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dfCsvFileName, encodeDfCsvHeader, encodeDfCsvRow } from './codecs/df-csv.ts';
import { JSON_FIELDS, encodeFieldJsonEnd, encodeFieldJsonEntry, fieldJsonFileName, type JsonField } from './codecs/field-json.ts';
import { parseRejectsPath, readParseSummary, type ParseSummary } from './codecs/parse-summary.ts';
import { MANIFEST_FILE, SPLITS, encodeManifest, readManifest, readSegmentFile, type Split } from './codecs/segment.ts';
import { readSegmentStatus, type SegmentStatus } from './codecs/segment-status.ts';
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

function imageCounts(statuses: readonly SegmentStatus[]): ImageCounts {
  const reasons = new CappedCounter();
  let ok = 0;
  let dropped = 0;
  let bytes = 0;
  for (const s of statuses) {
    ok += s.imagesOk;
    bytes += s.imageBytes;
    for (const m of s.missing) {
      reasons.add(m.reason);
      if (m.dropped) dropped++;
    }
  }
  return { ok, missing: reasons.total, missingByReason: reasons.toJSON(), dropped, bytes };
}

async function writeRejects(path: string, parseRejects: string, statuses: readonly SegmentStatus[]): Promise<void> {
  const w = await AtomicWriter.create(path);
  try {
    await w.write(parseRejects);
    for (const s of statuses) {
      for (const m of s.missing) {
        if (!m.dropped) continue;
        const rec = { source: m.source, ...positionFields(m), reason: 'image-missing', detail: `${m.reason}: ${m.detail}`, id: m.itemId };
        await w.write(JSON.stringify(rec) + '\n');
      }
    }
    await w.commit();
  } catch (e) {
    await w.abort();
    throw new IoError(path, e);
  }
}

/**
 * Finalizes a work dir whose segments are all complete: the whole-run ending, and `merge`
 * after shards. Throws an {@link IoError} naming the incomplete segments otherwise.
 */
export async function finalizeBuildData(opts: { workDir: string; run: RunInfo; seconds: number }): Promise<BuildDataResult> {
  const { workDir } = opts;
  const manifest = await readManifest(workDir);
  const summary = await readParseSummary(workDir);
  const statuses: SegmentStatus[] = [];
  const incomplete: number[] = [];
  for (const e of manifest.segments) {
    const s = await readSegmentStatus(workDir, e.seg);
    if (s && s.items === e.items && s.split === e.split) statuses.push(s);
    else incomplete.push(e.seg);
  }
  if (incomplete.length > 0) {
    throw new IoError(workDir, `segments not complete: ${incomplete.join(', ')} (run the shards that own them, then merge again)`);
  }
  // With --missing-image drop a segment file holds fewer rows than the parse pass assigned.
  const kept = new Map(statuses.map((s) => [s.seg, s.kept]));
  const finalManifest = { ...manifest, segments: manifest.segments.map((e) => ({ ...e, items: kept.get(e.seg)! })) };
  await writeFileAtomic(join(workDir, MANIFEST_FILE), encodeManifest(finalManifest));

  const splits = {} as BuildDataReport['splits'];
  for (const split of Object.keys(SPLITS) as Split[]) {
    const entries = finalManifest.segments.filter((e) => e.split === split);
    splits[split] = { segments: entries.length, items: await writeSplitTables(workDir, split, entries.map((e) => e.file)) };
  }

  const parseRejects = await readFile(parseRejectsPath(workDir), 'utf8').catch((e) => {
    throw new IoError(parseRejectsPath(workDir), e);
  });
  const rejectsPath = join(workDir, 'rejects', `${STAGE}.jsonl`);
  await writeRejects(rejectsPath, parseRejects, statuses);

  const images = imageCounts(statuses);
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
export async function shardReport(opts: {
  workDir: string;
  shard: Shard;
  run: RunInfo;
  seconds: number;
  statuses: SegmentStatus[];
  summary: ParseSummary;
}): Promise<BuildDataResult> {
  const { workDir, shard, statuses, summary } = opts;
  const name = `${STAGE}${shardSuffix(shard)}`;
  const rejectsPath = join(workDir, 'rejects', `${name}.jsonl`);
  await writeRejects(rejectsPath, '', statuses);
  const images = imageCounts(statuses);
  const splits: BuildDataReport['splits'] = { train: { segments: 0, items: 0 }, val: { segments: 0, items: 0 } };
  for (const s of statuses) {
    splits[s.split].segments++;
    splits[s.split].items += s.kept;
  }
  const report = finishReport({
    stage: STAGE,
    in: statuses.reduce((a, s) => a + s.items, 0),
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

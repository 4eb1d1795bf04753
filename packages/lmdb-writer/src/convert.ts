/**
 * @file `convert`: features + metadata + knowledge → `image_lmdb_json/*_feat_{all,part_<i>}.lmdb`.
 *
 * One unit per split. Records are appended and committed in batches; each commit carries a
 * progress marker in the same LMDB transaction, so a rerun after a kill resumes from the last
 * committed record: the join is replayed (it is deterministic and also regenerates the reject
 * log), the committed records are skipped after checking that the last one lines up, and
 * writing continues. A split whose LMDB and report entry match the inputs is skipped.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join as joinPath } from 'node:path';
import { readManifest, type Split } from '@k3m-kit/raw-ingest';
import {
  createProgress,
  formatTable,
  IoError,
  keepFreedMemory,
  LMDB_WRITER_MALLOC,
  Ledger,
  ownsUnit,
  RejectLog,
  shardSuffix,
  writeReport,
  type LedgerCounts,
  type Shard,
  type StageReportBase,
  type TableRow,
} from '@k3m-kit/core';
import { KNOWLEDGE_FILE, readKnowledge } from '@k3m-kit/kg-triples';
import { FEATURE_DIR, readFeatureMeta, type FeatureDims } from '@k3m-kit/region-features/feature-tsv';
import { TensorpackLmdbWriter, type Progress } from './codecs/tensorpack-lmdb.ts';
import { featureFiles, join, type KnowledgeEntry, type MissingImagePolicy } from './join.ts';
import { sha1, verify } from './codecs/record-reader.ts';

export const STAGE = 'lmdb-writer';
export const LMDB_DIR = 'image_lmdb_json';
/** The reference's LMDB base names per split. */
export const LMDB_NAMES = Object.freeze({ train: 'training', val: 'validation' });
export const SPLIT_NAMES = Object.freeze(['train', 'val'] as const);

/**
 * `training_feat_all.lmdb`, or `training_feat_part_<i>.lmdb` for shard i of N > 1 (the name
 * the original distributed loader expects).
 */
export function lmdbPath(workDir: string, split: Split, shard?: Shard): string {
  const part = shard && shard.count > 1 ? `part_${shard.index}` : 'all';
  return joinPath(workDir, LMDB_DIR, `${LMDB_NAMES[split]}_feat_${part}.lmdb`);
}

/** Where the cleaned knowledge comes from. */
export interface KnowledgeSource {
  name: string;
  /** Files the knowledge comes from (part of the resume fingerprint). */
  inputs: string[];
  open?: (split: Split) => AsyncIterable<KnowledgeEntry>;
}

/**
 * kg-triples' `readKnowledge` when `kg/knowledge.tsv` exists (kg-triples build has run);
 * otherwise the segment files' `pv` with a final `;` (the form the model reads).
 */
export function defaultKnowledge(workDir: string): KnowledgeSource {
  const file = joinPath(workDir, 'kg', KNOWLEDGE_FILE);
  if (!existsSync(file)) return { name: 'raw-ingest pv + ";" (no kg/knowledge.tsv)', inputs: [] };
  return { name: 'kg-triples kg/knowledge.tsv', inputs: [file], open: (split) => readKnowledge(workDir, split) };
}

export interface ConvertOptions {
  workDir: string;
  splits?: readonly Split[];
  shard: Shard;
  missingImage: MissingImagePolicy;
  fp16: boolean;
  clsProb: boolean;
  /** Commit after this many records ... */
  batchRecords: number;
  /** ... or this many MB of values, whichever comes first. */
  batchMb: number;
  /** Records read back at the end besides the hashed sample. */
  verifySample: number;
  quiet: boolean;
  knowledge?: KnowledgeSource;
  /** Threads decoding feature rows; default {@link defaultWorkers}; 0: the main thread only. */
  workers?: number;
  /** MB of feature rows decoded on the main thread before workers start (default 64). */
  workersAfterMb?: number;
}

/**
 * Decoding threads by default: none on 2 cores or fewer, where one thread beside the main one
 * lost (measured by tools/bench/convert.ts on a quiet 2-core machine: 255 against 359
 * records/s, the hand-over of ~700 KB lines costing more than the decode it moves); else one
 * per core but one, since the main thread keeps a core busy with reading, the join, packing
 * and the LMDB writes (~40% of a record's CPU).
 */
export function defaultWorkers(): number {
  const cores = availableParallelism();
  return cores <= 2 ? 0 : cores - 1;
}

/**
 * The feature TSV rows' own ledger: `in` rows this run owns, counted as read; `written` rows
 * carried by a record (every record that is not image-missing); `rejected` rows with their own
 * reject line. `decoded`: rows the decoder was handed (the others belong to other shards).
 */
export interface FeatureRowCounts extends LedgerCounts {
  decoded: number;
}

/** One split's LMDB and its share of the counts (see {@link ConvertReport}). */
export interface SplitReport extends LedgerCounts {
  file: string;
  /** Records in the LMDB (equal to `written`). */
  records: number;
  imageMissing: number;
  /** Records that were already committed by an interrupted run. */
  resumedFrom: number;
  skipped: boolean;
  bytes: number;
  fingerprint: string;
  featureRows: FeatureRowCounts;
}

/**
 * Counted in items: `in` items of this run's segments, counted as read; `written` LMDB records,
 * counted as each is put; `rejected` items' reject lines (`feature-row-rejected`,
 * `duplicate-id`, `bad-id`, `image-missing`), counted as each is logged. The feature rows have
 * their own ledger, `featureRows`; their reject lines are in the same reject log (their
 * `source` is the TSV). `reconciles`: both ledgers reconcile.
 */
export interface ConvertReport extends StageReportBase {
  featureRows: FeatureRowCounts;
  splits: Partial<Record<Split, SplitReport>>;
  bytes: number;
  valueBytes: number;
  mbPerSecond: number;
  knowledge: string;
  /** glibc malloc settings of the writing process, or why glibc's defaults stayed (core's `keepFreedMemory`). */
  malloc: string;
  options: { fp16: boolean; clsProb: boolean; missingImage: MissingImagePolicy; shard: string };
}

function fingerprintOf(o: ConvertOptions, split: Split, knowledge: string, inputs: string[], dims: unknown): string {
  const files = inputs.map((f) => {
    const s = statSync(f);
    return [f, s.size, s.mtimeMs];
  });
  const what = { v: 3, split, shard: o.shard, fp16: o.fp16, clsProb: o.clsProb, missingImage: o.missingImage, knowledge, dims, files };
  return createHash('sha256').update(JSON.stringify(what)).digest('hex').slice(0, 32);
}

function previousReport(workDir: string, name: string): ConvertReport | undefined {
  try {
    return JSON.parse(readFileSync(joinPath(workDir, 'reports', `${name}.json`), 'utf8')) as ConvertReport;
  } catch {
    return undefined;
  }
}

/** The committed records of a partial LMDB no longer line up with the inputs. */
class ReplayMismatch extends Error {
  constructor(readonly partial: string) {
    super(`${partial}: committed records do not line up with the inputs`);
  }
}

/**
 * Runs the stage: one LMDB per split, rejects in `rejects/lmdb-writer[.shard-i-of-N].jsonl`,
 * the report in `reports/lmdb-writer[...].json`.
 * @example await convert({ workDir: 'work', shard: WHOLE, missingImage: 'keep', fp16: false, ... })
 */
export async function convert(o: ConvertOptions): Promise<ConvertReport> {
  try {
    return await convertRun(o);
  } catch (e) {
    if (!(e instanceof ReplayMismatch)) throw e;
    // Start that split afresh; the whole run is redone so the reject log and counts are whole.
    rmSync(e.partial, { force: true });
    return convertRun(o);
  }
}

async function convertRun(o: ConvertOptions): Promise<ConvertReport> {
  const t0 = performance.now();
  const name = STAGE + shardSuffix(o.shard);
  const meta = await readFeatureMeta(o.workDir);
  const dims = { featureDim: meta.featureDim, numClasses: meta.numClasses };
  const manifest = await readManifest(o.workDir);
  const knowledge = o.knowledge ?? defaultKnowledge(o.workDir);
  const prev = previousReport(o.workDir, name);
  // Items and feature rows of all splits; each split's own ledgers are folded in.
  const items = new Ledger();
  const rows = new Ledger();
  let decoded = 0;
  // Not tied to a ledger: a reject line is an item's or a feature row's, counted in its own.
  const rejects = await RejectLog.open(o.workDir, name);
  const splits: Partial<Record<Split, SplitReport>> = {};
  let valueBytes = 0;
  try {
    for (const split of o.splits ?? SPLIT_NAMES) {
      const segs = manifest.segments.filter((e) => e.split === split && ownsUnit(o.shard, e.seg));
      const inputs = [...segs.map((e) => joinPath(o.workDir, e.file)), ...featureFiles(o.workDir, split), joinPath(o.workDir, FEATURE_DIR, 'meta.json'), ...knowledge.inputs];
      const fingerprint = fingerprintOf(o, split, knowledge.name, inputs, { ...dims, maxBoxes: meta.maxBoxes });
      const file = lmdbPath(o.workDir, split, o.shard);
      const done = prev?.splits?.[split];
      // A finished split is skipped only when it had no rejects: the reject log is rewritten per run.
      if (done?.fingerprint === fingerprint && existsSync(file) && !existsSync(`${file}.partial`) && done.rejected === 0 && done.featureRows.rejected === 0) {
        items.addCounts(done);
        rows.addCounts(done.featureRows);
        decoded += done.featureRows.decoded;
        splits[split] = { ...done, skipped: true };
        continue;
      }
      const total = segs.reduce((a, e) => a + e.items, 0);
      const ledgers = { items: new Ledger(), featureRows: new Ledger() };
      const result = await convertSplit(o, { split, file, fingerprint, total, knowledge, rejects, ...ledgers, dims, maxBoxes: meta.maxBoxes });
      const counts = ledgers.items.counts();
      const featureRows = { ...ledgers.featureRows.counts(), decoded: result.decoded };
      splits[split] = { ...result.report, ...counts, featureRows };
      items.addCounts(counts);
      rows.addCounts(featureRows);
      decoded += result.decoded;
      valueBytes += result.valueBytes;
    }
    await rejects.commit();
  } catch (e) {
    await rejects.abort();
    throw e;
  }
  const seconds = (performance.now() - t0) / 1000;
  const all = Object.values(splits);
  const itemCounts = items.counts();
  const featureRows = { ...rows.counts(), decoded };
  const report: ConvertReport = {
    stage: STAGE,
    ...itemCounts,
    reconciles: itemCounts.reconciles && featureRows.reconciles,
    featureRows,
    seconds,
    splits,
    bytes: all.reduce((a, s) => a + s.bytes, 0),
    valueBytes,
    mbPerSecond: valueBytes / 1e6 / Math.max(seconds, 1e-9),
    knowledge: knowledge.name,
    malloc: keepFreedMemory(LMDB_WRITER_MALLOC).text,
    options: { fp16: o.fp16, clsProb: o.clsProb, missingImage: o.missingImage, shard: `${o.shard.index}/${o.shard.count}` },
  };
  await writeReport(o.workDir, name, report);
  return report;
}

interface SplitJob {
  split: Split;
  file: string;
  fingerprint: string;
  total: number;
  knowledge: KnowledgeSource;
  rejects: RejectLog;
  items: Ledger;
  featureRows: Ledger;
  dims: FeatureDims;
  maxBoxes: number;
}

type SplitResult = { report: Omit<SplitReport, keyof LedgerCounts | 'featureRows'>; valueBytes: number; decoded: number };

async function convertSplit(o: ConvertOptions, j: SplitJob): Promise<SplitResult> {
  const { writer, progress: resumed } = TensorpackLmdbWriter.open(j.file, j.fingerprint);
  const skip = writer.resumedFrom;
  const bar = createProgress(`${LMDB_NAMES[j.split]} records`, j.total, { quiet: o.quiet });
  const stride = Math.max(1, Math.ceil(j.total / Math.max(1, o.verifySample)));
  const expected = new Map<number, string>();
  const batchBytes = o.batchMb * 1e6;
  let index = 0;
  let imageMissing = 0;
  let valueBytes = 0;
  let sinceCommit = 0;
  let bytesSinceCommit = 0;
  let lastImageId = '';
  const mark = (): Progress => ({ fingerprint: j.fingerprint, records: writer.count, lastImageId, split: j.split });
  const stats = { featureRowsDecoded: 0 };
  try {
    for await (const ev of join({
      workDir: o.workDir,
      split: j.split,
      dims: j.dims,
      maxBoxes: j.maxBoxes,
      shard: o.shard,
      missingImage: o.missingImage,
      encoding: { fp16: o.fp16, clsProb: o.clsProb },
      workers: o.workers ?? defaultWorkers(),
      workersAfterBytes: (o.workersAfterMb ?? 64) * 1e6,
      items: j.items,
      featureRows: j.featureRows,
      stats,
      knowledge: j.knowledge.open?.(j.split),
    })) {
      if (ev.kind === 'reject') {
        await j.rejects.add(ev.reject);
        (ev.of === 'item' ? j.items : j.featureRows).rejected(ev.reject.reason);
        continue;
      }
      bar.increment();
      // Records committed by an interrupted run are in the output too.
      j.items.wrote();
      if (!ev.imageMissing) j.featureRows.wrote();
      if (ev.imageMissing) imageMissing++;
      lastImageId = ev.imageId;
      if (index < skip) {
        if (index === skip - 1 && resumed && lastImageId !== resumed.lastImageId) throw new ReplayMismatch(writer.partialPath);
        index++;
        continue;
      }
      await writer.append(ev.value);
      if (index % stride === 0) expected.set(index, sha1(ev.value));
      index++;
      valueBytes += ev.value.length;
      sinceCommit++;
      bytesSinceCommit += ev.value.length;
      if (sinceCommit >= o.batchRecords || bytesSinceCommit >= batchBytes) {
        await writer.commit(mark());
        sinceCommit = 0;
        bytesSinceCommit = 0;
      }
    }
    bar.stop();
    if (index < skip) throw new ReplayMismatch(writer.partialPath);
    await writer.finish();
  } catch (e) {
    bar.stop();
    try {
      await writer.abandon();
    } catch {
      // already closed
    }
    throw e;
  }
  const check = verify(j.file, { expected, sample: o.verifySample });
  if (check.problems.length) throw new IoError(j.file, `read-back check failed: ${check.problems.slice(0, 3).join('; ')}`);
  return {
    report: { file: j.file, records: index, imageMissing, resumedFrom: skip, skipped: false, bytes: statSync(j.file).size, fingerprint: j.fingerprint },
    valueBytes,
    decoded: stats.featureRowsDecoded,
  };
}

/** The report as a table for people. */
export function convertTable(r: ConvertReport): string {
  const rows: TableRow[] = [['in (items)', r.in], ['written (records)', r.written], ['rejected (items)', r.rejected]];
  for (const [reason, n] of Object.entries(r.rejectedByReason)) rows.push([`  ${reason}`, n]);
  const f = r.featureRows;
  rows.push(['feature rows in', f.in], ['feature rows written', f.written], ['feature rows rejected', f.rejected]);
  for (const [reason, n] of Object.entries(f.rejectedByReason)) rows.push([`  ${reason}`, n]);
  rows.push(['feature rows decoded', f.decoded]);
  for (const [split, s] of Object.entries(r.splits)) {
    rows.push([`${split} records`, s.records]);
    rows.push([`${split} image-missing`, s.imageMissing]);
    rows.push([`${split} bytes`, s.bytes]);
    if (s.resumedFrom) rows.push([`${split} resumed from`, s.resumedFrom]);
    if (s.skipped) rows.push([`${split}`, 'up to date, skipped']);
  }
  rows.push(['MB/s', r.mbPerSecond], ['seconds', r.seconds], ['knowledge', r.knowledge], ['malloc', r.malloc], ['reconciles', r.reconciles]);
  return formatTable(STAGE, rows);
}

/**
 * @file `merge`: N per-shard LMDBs (`*_feat_part_<i>.lmdb`) → the single-run `*_feat_all.lmdb`.
 *
 * Shard i holds the segments with `seg % N == i`, each in manifest order, so walking the
 * manifest's segments and taking each one's records from its shard restores the single-run
 * order. Values are copied byte for byte, so the result's records equal a single run's.
 * Resumable like convert (progress marker per commit).
 *
 * Counts: the same as a single run's convert report. `written` is counted here, one per record
 * copied; `in` and `rejected` (items) and the `featureRows` ledger are the shards' counts, read
 * from their reports (`reports/lmdb-writer.shard-<i>-of-<N>.json`), each checked against the
 * records its part holds. `reconciles` compares the shards' items with the records merged, so a
 * record lost between a shard and the merged LMDB shows.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join as joinPath } from 'node:path';
import { z } from 'zod';
import { readManifest, type Split } from '@k3m-kit/raw-ingest';
import { createProgress, formatTable, IoError, keepFreedMemory, Ledger, LMDB_WRITER_MALLOC, shardSuffix, UsageError, writeReport, type StageReportBase, type TableRow } from '@k3m-kit/core';
import { decodeRecord } from './codecs/msgpack-numpy.ts';
import { TensorpackLmdbReader, TensorpackLmdbWriter } from './codecs/tensorpack-lmdb.ts';
import { LMDB_DIR, LMDB_NAMES, lmdbPath, SPLIT_NAMES, STAGE, type FeatureRowCounts } from './convert.ts';
import { verify } from './codecs/record-reader.ts';

export interface MergeOptions {
  workDir: string;
  /** N; default: the number of part files found (they must be 0 .. N-1). */
  numShards?: number;
  splits?: readonly Split[];
  batchRecords: number;
  quiet: boolean;
}

/** What merge reads of a shard's convert report: one split's counts. */
const ShardSplitSchema = z.object({
  records: z.number().int().nonnegative(),
  in: z.number().int().nonnegative(),
  rejectedByReason: z.record(z.string(), z.number().int().nonnegative()),
  featureRows: z.object({
    in: z.number().int().nonnegative(),
    written: z.number().int().nonnegative(),
    rejectedByReason: z.record(z.string(), z.number().int().nonnegative()),
    decoded: z.number().int().nonnegative(),
  }),
});
const ShardReportSchema = z.object({ splits: z.record(z.string(), ShardSplitSchema) });
type ShardSplit = z.infer<typeof ShardSplitSchema>;

/** Shard i's counts for a split, from its report; its part must hold the records it reports. */
function shardCounts(workDir: string, split: Split, index: number, count: number, partRecords: number): ShardSplit {
  const path = joinPath(workDir, 'reports', `${STAGE}${shardSuffix({ index, count })}.json`);
  let counts: ShardSplit | undefined;
  try {
    counts = ShardReportSchema.parse(JSON.parse(readFileSync(path, 'utf8'))).splits[split];
  } catch (e) {
    throw new IoError(path, e);
  }
  if (!counts) throw new IoError(path, `no ${split} split: rerun lmdb-writer convert --shard ${index}/${count}`);
  if (counts.records !== partRecords) {
    throw new IoError(path, `reports ${counts.records} ${split} records, its part holds ${partRecords}: rerun lmdb-writer convert --shard ${index}/${count}`);
  }
  return counts;
}

export interface MergeReport extends StageReportBase {
  mode: 'merge';
  numShards: number;
  /** The shards' feature-row ledgers, summed. */
  featureRows: FeatureRowCounts;
  splits: Partial<Record<Split, { file: string; parts: string[]; records: number; bytes: number; resumedFrom: number }>>;
  bytes: number;
  /** glibc malloc settings of the writing process (as in convert's report). */
  malloc: string;
}

function partsOf(workDir: string, split: Split, numShards: number | undefined): string[] {
  const dir = joinPath(workDir, LMDB_DIR);
  const re = new RegExp(`^${LMDB_NAMES[split]}_feat_part_(\\d+)\\.lmdb$`);
  const found = existsSync(dir) ? readdirSync(dir).map((f) => re.exec(f)).filter((m) => m !== null) : [];
  const n = numShards ?? found.length;
  if (n < 1) throw new UsageError(`--work-dir ${workDir}: no ${LMDB_NAMES[split]}_feat_part_<i>.lmdb to merge`);
  const parts = Array.from({ length: n }, (_, i) => lmdbPath(workDir, split, { index: i, count: n }));
  const missing = parts.filter((p) => !existsSync(p));
  if (missing.length) throw new UsageError(`--num-shards ${n}: missing ${missing.join(', ')}`);
  return parts;
}

const segOf = (imageId: string) => Number(/_s(\d+)$/.exec(imageId)?.[1] ?? NaN);

/**
 * Merges the shard LMDBs of each split into `*_feat_all.lmdb`.
 * @example await merge({ workDir: 'work', batchRecords: 1000, quiet: true })
 */
export async function merge(o: MergeOptions): Promise<MergeReport> {
  const t0 = performance.now();
  const manifest = await readManifest(o.workDir);
  const splits: MergeReport['splits'] = {};
  let n = 0;
  const items = new Ledger();
  const rows = new Ledger();
  let decoded = 0;
  for (const split of o.splits ?? SPLIT_NAMES) {
    const parts = partsOf(o.workDir, split, o.numShards);
    n = parts.length;
    const readers = parts.map((p) => TensorpackLmdbReader.open(p));
    const file = lmdbPath(o.workDir, split);
    try {
      for (const [i, r] of readers.entries()) {
        const c = shardCounts(o.workDir, split, i, n, r.length);
        items.read(c.in);
        for (const [reason, k] of Object.entries(c.rejectedByReason)) items.rejected(reason, k);
        rows.addCounts(c.featureRows);
        decoded += c.featureRows.decoded;
      }
      const fingerprint = createHash('sha256')
        .update(JSON.stringify(parts.map((p) => [p, statSync(p).size, statSync(p).mtimeMs])))
        .digest('hex')
        .slice(0, 32);
      const { writer } = TensorpackLmdbWriter.open(file, fingerprint);
      const skip = writer.resumedFrom;
      const total = readers.reduce((a, r) => a + r.length, 0);
      const bar = createProgress(`merge ${LMDB_NAMES[split]}`, total, { quiet: o.quiet });
      const next = readers.map(() => 0);
      let index = 0;
      let last = '';
      for (const e of manifest.segments.filter((s) => s.split === split)) {
        const shard = e.seg % n;
        const r = readers[shard]!;
        while (next[shard]! < r.length) {
          const v = r.value(next[shard]!);
          const id = decodeRecord(v).record.imageId;
          if (segOf(id) !== e.seg) break;
          next[shard]!++;
          bar.increment();
          last = id;
          // Records an interrupted merge committed are in the output already.
          items.wrote();
          if (index++ < skip) continue;
          await writer.append(v);
          if (writer.count % o.batchRecords === 0) await writer.commit({ fingerprint, records: writer.count, lastImageId: last });
        }
      }
      bar.stop();
      const left = next.findIndex((k, i) => k < readers[i]!.length);
      if (left >= 0) {
        await writer.abandon();
        throw new IoError(parts[left]!, `record ${next[left]} belongs to no ${split} segment of shard ${left} in manifest order`);
      }
      await writer.finish();
      const check = verify(file, { sample: 16 });
      if (check.problems.length) throw new IoError(file, `read-back check failed: ${check.problems[0]}`);
      splits[split] = { file, parts, records: index, bytes: statSync(file).size, resumedFrom: skip };
    } finally {
      for (const r of readers) r.close();
    }
  }
  const all = Object.values(splits);
  const itemCounts = items.counts();
  const featureRows = { ...rows.counts(), decoded };
  const report: MergeReport = {
    stage: STAGE,
    mode: 'merge',
    numShards: n,
    ...itemCounts,
    reconciles: itemCounts.reconciles && featureRows.reconciles,
    featureRows,
    seconds: (performance.now() - t0) / 1000,
    splits,
    bytes: all.reduce((a, s) => a + s.bytes, 0),
    malloc: keepFreedMemory(LMDB_WRITER_MALLOC).text,
  };
  await writeReport(o.workDir, `${STAGE}.merge`, report);
  return report;
}

export function mergeTable(r: MergeReport): string {
  const f = r.featureRows;
  const rows: TableRow[] = [['shards', r.numShards], ['in (items, from the shards)', r.in], ['written (records)', r.written], ['rejected (items, from the shards)', r.rejected]];
  for (const [reason, n] of Object.entries(r.rejectedByReason)) rows.push([`  ${reason}`, n]);
  rows.push(['feature rows in', f.in], ['feature rows written', f.written], ['feature rows rejected', f.rejected]);
  for (const [reason, n] of Object.entries(f.rejectedByReason)) rows.push([`  ${reason}`, n]);
  for (const [split, s] of Object.entries(r.splits)) rows.push([`${split} records`, s.records], [`${split} bytes`, s.bytes]);
  rows.push(['seconds', r.seconds], ['malloc', r.malloc], ['reconciles', r.reconciles]);
  return formatTable(`${STAGE} merge`, rows);
}

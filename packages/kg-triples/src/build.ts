/**
 * @file `kg-triples build`: the stage entry. Runs the per-segment pass on this shard's segments
 * (skipping those with a current part), then the merge once every segment of the manifest has
 * one: in a single run right away, with shards in whichever shard finishes last.
 */
import { join } from 'node:path';
import { readManifest } from '@k3m-kit/raw-ingest';
import { Ledger, WHOLE, createProgress, ownsUnit, shardSuffix, writeReport, type Shard } from '@k3m-kit/core';
import { readPartMarker, type PartMarker } from './codecs/part.ts';
import { merge, pendingSegments } from './merge.ts';
import { BuildOptionsSchema, type KgOptions } from './options.ts';
import { STAGE, shardLabel, summarise, type KgReport, type KgShardReport } from './report.ts';
import { processSegment, segmentFingerprint } from './segment-pass.ts';

export interface BuildRun extends Partial<KgOptions> {
  workDir: string;
  shard?: Shard;
  quiet?: boolean;
}

/**
 * Builds the knowledge modality of `workDir` (issue 3). Returns the merged report, or a shard
 * report when other segments are still pending.
 * @example const report = await build({ workDir: 'work', minEntityFreq: 2 });
 */
export async function build(run: BuildRun): Promise<KgReport | KgShardReport> {
  const started = performance.now();
  const { workDir, shard = WHOLE, quiet, ...rest } = run;
  const options = BuildOptionsSchema.parse(rest);
  const fingerprint = segmentFingerprint(options);
  const manifest = await readManifest(workDir);
  const kgDir = join(workDir, 'kg');

  const mine = manifest.segments.filter((e) => ownsUnit(shard, e.seg));
  const todo: typeof mine = [];
  const done: PartMarker[] = [];
  for (const e of mine) {
    const m = await readPartMarker(kgDir, e.seg);
    if (m && m.fingerprint === fingerprint && m.file === e.file && m.split === e.split && m.stats.items === e.items) done.push(m);
    else todo.push(e);
  }
  const progress = createProgress('kg-triples', todo.reduce((a, e) => a + e.items, 0), { quiet });
  const processed: PartMarker[] = [];
  try {
    for (const e of todo) processed.push(await processSegment(workDir, e, options, progress));
  } finally {
    progress.stop();
  }

  const { pending } = await pendingSegments(workDir, manifest.segments, fingerprint);
  if (pending.length === 0) return merge(workDir, { ...options, quiet, fingerprint });

  const markers = [...done, ...processed].sort((a, b) => a.seg - b.seg);
  const summary = summarise(markers, options.maxPairs);
  // This shard's output is its parts: pairs read, written to part triples, rejected by cleaning.
  const ledger = new Ledger();
  for (const m of markers) ledger.addCounts({ in: m.stats.pairsIn, written: m.stats.pairsOut, rejectedByReason: m.stats.rejectedByReason });
  const report: KgShardReport = {
    stage: STAGE,
    merged: false,
    shard: shardLabel(shard),
    ...ledger.counts(),
    seconds: (performance.now() - started) / 1000,
    segmentsProcessed: processed.length,
    segmentsSkipped: done.length,
    segmentsPending: pending,
    ...summary,
  };
  await writeReport(workDir, `${STAGE}${shardSuffix(shard)}`, report);
  return report;
}

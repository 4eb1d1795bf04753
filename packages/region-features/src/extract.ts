/**
 * @file The `extract` stage: every image of this shard's segments through the detector (on
 * `workers` threads), one feature row per image into the segment's part in item order, then
 * (when every segment is done) the merge into `image_features/{train,dev}.tsv.0`,
 * `rejects/region-features.jsonl`, `meta.json` and `reports/region-features.json`.
 *
 * Counts come from a {@link Ledger} fed at three separate places: the segment reader (`read`,
 * one per item read), the TSV writer (`wrote`, one per row appended) and the reject log (one per
 * reject line); items without an image are `skipped` as `image-missing`. The merge counts again
 * from what it copies: rows and reject lines of the parts against the items their segments read.
 */
import { closeSync, createReadStream, existsSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { basename, dirname, join } from 'node:path';
import {
  AtomicWriter,
  IoError,
  Ledger,
  RejectLog,
  UsageError,
  createProgress,
  formatTable,
  ownsUnit,
  shardSuffix,
  writeFileAtomic,
  writeReport,
  type LedgerCounts,
  type RejectRecord,
  type Shard,
  type StageReportBase,
  type TableRow,
} from '@k3m-kit/core';
import { readManifest, readSegmentFile, type SegmentEntry } from '@k3m-kit/raw-ingest';
import { describeBackend, selectBackend } from '@k3m-kit/core/backend';
import { featureTsvPath, writeFeatureMeta, type TsvForm } from './codecs/feature-tsv.ts';
import {
  fingerprintOf,
  partPaths,
  readMarker,
  recoverLines,
  removePart,
  writeMarker,
  type PartMarker,
  type PartSettings,
} from './codecs/feature-parts.ts';
import { DetectorPool, type ImageResult } from './detector-pool.ts';
import { decodeImage, ImageDecodeError } from './image.ts';
import type { SelectionRule } from './model/boxes.ts';
import { optionalParamShapes } from './model/params.ts';
import { k3mIncompatibility, PRESETS, presetDims, type PresetName } from './model/presets.ts';
import { shareParams } from './shared-params.ts';
import { loadWeights, randomInitNote } from './weights.ts';

export const STAGE = 'region-features';
/** Why an item gets no row and no reject: it has no image (lmdb-writer writes num_boxes = 0). */
export const IMAGE_MISSING = 'image-missing';

export interface ExtractOptions {
  workDir: string;
  shard: Shard;
  quiet: boolean;
  preset: PresetName;
  /** `.safetensors` (from convert-weights) or a detectron2 `.pkl`; absent: random init (small presets only). */
  weights?: string;
  seed: number;
  /** Shorter side / longer-side cap; the preset's when absent. */
  minSize?: number;
  maxSize?: number;
  rule: SelectionRule;
  form: TsvForm;
  backend?: string;
  /** Images decoded ahead of the workers. */
  prefetch: number;
  /** Detector worker threads, each with its own back end; default: the machine's cores. */
  workers?: number;
  /** Also write each box's attribute probabilities (`attr_prob`, needs the `_attr` weights). */
  attributes?: boolean;
  /** Aborting stops the workers and throws {@link InterruptedError}; a rerun resumes. */
  signal?: AbortSignal;
}

/** The run was stopped (Ctrl-C); the parts written so far are kept for a rerun to resume. */
export class InterruptedError extends Error {
  override name = 'InterruptedError';
}

/** Default worker count: every core. */
export function defaultWorkers(): number {
  return availableParallelism();
}

interface SegmentRun {
  marker: PartMarker;
  /** Images run through the detector now (not found done in the part). */
  processed: number;
}

/** The part's reject log: `image_features/parts/rejects/seg<k>.jsonl`, committed when the segment ends. */
async function openPartRejects(workDir: string, seg: number, ledger: Ledger): Promise<RejectLog> {
  const path = partPaths(workDir, seg).rejects;
  // A killed run leaves its uncommitted temp file; its images are redone and rejected again.
  const dir = dirname(path);
  const stale = existsSync(dir) ? (await readdir(dir)).filter((f) => f.startsWith(`.${basename(path)}.`) && f.endsWith('.tmp')) : [];
  await Promise.all(stale.map((f) => rm(join(dir, f), { force: true })));
  return RejectLog.open(dirname(dir), basename(path, '.jsonl'), ledger);
}

async function runSegment(
  workDir: string,
  e: SegmentEntry,
  pool: DetectorPool,
  settings: PartSettings,
  opts: ExtractOptions,
  progress: { increment(n?: number): void },
): Promise<SegmentRun> {
  const fingerprint = fingerprintOf(settings);
  const paths = partPaths(workDir, e.seg);
  const started = existsSync(paths.started) ? await readFile(paths.started, 'utf8').catch(() => '') : '';
  if (started !== fingerprint) {
    await removePart(workDir, e.seg);
    await writeFileAtomic(paths.started, fingerprint);
  }
  const ledger = new Ledger();
  // Rows a killed run already appended stay: they are in the output, so they count as written.
  const doneLines = await recoverLines(paths.tsv);
  ledger.wrote(doneLines.length);
  const done = new Set(doneLines.map((l) => l.slice(0, l.indexOf('\t'))));
  const rejects = await openPartRejects(workDir, e.seg, ledger);
  let processed = 0;
  const tsvFd = openSync(paths.tsv, 'a');
  const source = e.file;
  type Pending = { imageId: string; line: number; result: Promise<ImageResult> };
  const pending: Pending[] = [];
  // Results are written in item order whichever worker finished first; this bounds how many
  // images are decoded or on a worker at once.
  const window = opts.prefetch + 2 * pool.size;
  const settle = async (p: Pending) => {
    const res = await p.result;
    if ('reason' in res) await rejects.add({ source, line: p.line, reason: res.reason, detail: res.detail, id: p.imageId });
    else {
      writeSync(tsvFd, res.bytes);
      ledger.wrote();
    }
    processed++;
    progress.increment();
  };
  try {
    const { minSize, maxSize } = settings;
    for await (const row of readSegmentFile(join(workDir, e.file))) {
      if (opts.signal?.aborted) throw new InterruptedError('interrupted');
      ledger.read();
      if (row.pic === '') {
        ledger.skipped(IMAGE_MISSING);
        progress.increment();
        continue;
      }
      if (done.has(row.imageId)) {
        progress.increment();
        continue;
      }
      const result = decodeImage(join(workDir, 'image', row.pic), minSize, maxSize).then(
        (img) => pool.run(row.imageId, img),
        (err: unknown) => (err instanceof ImageDecodeError ? { reason: err.reason, detail: err.message } : { reason: 'decode-failed', detail: String(err) }),
      );
      // Awaited in order below; until then a failure must not count as unhandled.
      result.catch(() => {});
      pending.push({ imageId: row.imageId, line: row.line, result });
      if (pending.length > window) await settle(pending.shift()!);
    }
    while (pending.length) await settle(pending.shift()!);
    fsyncSync(tsvFd);
    await rejects.commit();
  } catch (err) {
    await rejects.abort();
    throw opts.signal?.aborted ? new InterruptedError('interrupted') : err;
  } finally {
    closeSync(tsvFd);
  }
  const c = ledger.counts();
  if (c.in !== e.items) throw new IoError(join(workDir, e.file), `has ${c.in} items, segments.json says ${e.items}`);
  const marker: PartMarker = {
    fingerprint,
    settings,
    seg: e.seg,
    split: e.split,
    file: e.file,
    items: c.in,
    in: c.in,
    written: c.written,
    rejected: c.rejected,
    imageMissing: c.skippedByReason?.[IMAGE_MISSING] ?? 0,
    rejectedByReason: c.rejectedByReason,
  };
  await writeMarker(workDir, marker);
  return { marker, processed };
}

export interface ExtractReport extends StageReportBase {
  /** Items with no image: read and counted, no row (skippedByReason `image-missing`). */
  skippedByReason?: Record<string, number>;
  /** Items in the segments covered (equals `in`). */
  items: number;
  imageMissing: number;
  segments: number;
  segmentsSkipped: number;
  /** Images decoded and run through the detector by this run, and their rate. */
  imagesProcessed: number;
  imagesPerSecond: number;
  /** Detector worker threads of this run (0 when every segment was already done). */
  workers: number;
  backend: string;
  preset: string;
  weights: string;
  randomInit: boolean;
  /** Plain words on what the features are. */
  note: string;
  /** True when the original K3M loader reads the rows (2048-d features, 1601 classes). */
  k3mReadable: boolean;
  /** Why the original loader cannot read them, when it cannot. */
  widthWarning?: string;
  rule: string;
  minSize: number;
  maxSize: number;
  form: string;
  featureDim: number;
  numClasses: number;
  /** Width of the `attr_prob` column, when extract ran with --attributes. */
  numAttributes?: number;
  shard: string;
  /** True when the TSVs were (re)written from every segment's part. */
  merged: boolean;
  outputs: string[];
}

function noteFor(s: PartSettings): string {
  return s.randomInit ? randomInitNote(Number(s.weights.split(' ').pop())) : `features from the detector weights in ${s.weights}`;
}

/** The width warning for a preset whose rows K3M's loader cannot read. */
export function widthWarning(preset: string, dims: { featureDim: number; numClasses: number }): string | undefined {
  const why = k3mIncompatibility(dims);
  return why && `preset ${preset} writes ${why} (the default preset small-c4-2048 and bua-r101-c4 write what it reads)`;
}

/** A shard's counts: the parts' own ledgers folded together. */
function shardCounts(markers: PartMarker[]): LedgerCounts {
  const ledger = new Ledger();
  for (const m of markers) ledger.addCounts({ ...m, skippedByReason: m.imageMissing ? { [IMAGE_MISSING]: m.imageMissing } : {} });
  return ledger.counts();
}

/**
 * Concatenates every segment's part, in manifest order, into the K3M-named outputs, streaming.
 * Its ledger takes `in` and `image-missing` from the parts' markers (counted by their readers),
 * `written` from the rows it copies and `rejected` from the reject lines it copies, so a part
 * that lost or gained a line does not reconcile. Throws an {@link IoError} naming the segments
 * that are not done (or done with other options).
 */
export async function mergeParts(workDir: string): Promise<{ markers: PartMarker[]; outputs: string[]; counts: LedgerCounts }> {
  const manifest = await readManifest(workDir);
  const markers: PartMarker[] = [];
  const pending: number[] = [];
  for (const e of manifest.segments) {
    const m = await readMarker(workDir, e.seg);
    if (!m || m.file !== e.file || m.items !== e.items) pending.push(e.seg);
    else markers.push(m);
  }
  if (pending.length) throw new IoError(join(workDir, 'image_features', 'parts'), `segments ${pending.join(', ')} are not done (run region-features extract for them)`);
  const fps = new Set(markers.map((m) => m.fingerprint));
  if (fps.size > 1) throw new IoError(join(workDir, 'image_features', 'parts'), 'segments were extracted with different options; rerun extract with one set of options');
  const ledger = new Ledger();
  for (const m of markers) {
    ledger.read(m.in);
    ledger.skipped(IMAGE_MISSING, m.imageMissing);
  }
  const outputs: string[] = [];
  for (const split of ['train', 'val'] as const) {
    const segs = markers.filter((m) => m.split === split);
    if (!segs.length) continue;
    const target = featureTsvPath(workDir, split, 0);
    const w = await AtomicWriter.create(target);
    try {
      for (const m of segs) {
        const part = partPaths(workDir, m.seg).tsv;
        if (!existsSync(part)) continue;
        for await (const chunk of createReadStream(part) as AsyncIterable<Buffer>) {
          ledger.wrote(countNewlines(chunk));
          await w.write(chunk);
        }
      }
      await w.commit();
    } catch (e) {
      await w.abort();
      throw new IoError(target, e);
    }
    outputs.push(target);
  }
  const rejects = await RejectLog.open(workDir, STAGE, ledger);
  try {
    for (const m of markers) {
      for (const line of await recoverLines(partPaths(workDir, m.seg).rejects)) await rejects.add(JSON.parse(line) as RejectRecord);
    }
    await rejects.commit();
  } catch (e) {
    await rejects.abort();
    throw new IoError(rejects.path, e);
  }
  outputs.push(rejects.path);
  const s = markers[0]?.settings;
  if (s) {
    await writeFeatureMeta(workDir, {
      featureDim: s.featureDim,
      numClasses: s.numClasses,
      ...(s.numAttributes ? { numAttributes: s.numAttributes } : {}),
      maxBoxes: s.rule === 'adaptive' ? 100 : 36,
      preset: s.preset,
      weights: s.weights,
      form: s.form,
    });
    outputs.push(join(workDir, 'image_features', 'meta.json'));
  }
  return { markers, outputs, counts: ledger.counts() };
}

function countNewlines(b: Buffer): number {
  let n = 0;
  for (let i = b.indexOf(10); i !== -1; i = b.indexOf(10, i + 1)) n++;
  return n;
}

interface RunFacts {
  seconds: number;
  processed: number;
  computeSeconds: number;
  skipped: number;
  workers: number;
  shard: Shard;
  merged: boolean;
  outputs: string[];
  backend: string;
}

function buildReport(counts: LedgerCounts, markers: PartMarker[], s: PartSettings, extra: RunFacts): ExtractReport {
  const warning = widthWarning(s.preset, s);
  return {
    stage: STAGE,
    ...counts,
    seconds: extra.seconds,
    items: markers.reduce((a, m) => a + m.items, 0),
    imageMissing: markers.reduce((a, m) => a + m.imageMissing, 0),
    segments: markers.length,
    segmentsSkipped: extra.skipped,
    imagesProcessed: extra.processed,
    imagesPerSecond: extra.computeSeconds > 0 ? extra.processed / extra.computeSeconds : 0,
    workers: extra.workers,
    backend: extra.backend,
    preset: s.preset,
    weights: s.weights,
    randomInit: s.randomInit,
    note: noteFor(s),
    k3mReadable: !warning,
    ...(warning ? { widthWarning: warning } : {}),
    rule: s.rule,
    minSize: s.minSize,
    maxSize: s.maxSize,
    form: s.form,
    featureDim: s.featureDim,
    numClasses: s.numClasses,
    ...(s.numAttributes ? { numAttributes: s.numAttributes } : {}),
    shard: `${extra.shard.index}/${extra.shard.count}`,
    merged: extra.merged,
    outputs: extra.outputs,
  };
}

/**
 * Runs the stage for `opts.shard`: segments already done with the same options are skipped,
 * a half-written segment is finished; when every segment of the manifest is done the outputs
 * are merged. A shard of N writes `reports/region-features.shard-i-of-N.json`; the merge writes
 * `reports/region-features.json`. The output does not depend on `workers`.
 */
export async function extract(opts: ExtractOptions): Promise<ExtractReport> {
  const t0 = performance.now();
  const cfg = PRESETS[opts.preset];
  if (!cfg) throw new UsageError(`--preset ${opts.preset}: must be one of ${Object.keys(PRESETS).join(', ')}`);
  const workers = opts.workers ?? defaultWorkers();
  if (!Number.isInteger(workers) || workers < 1) throw new UsageError(`--workers ${workers}: expected an integer >= 1`);
  const manifest = await readManifest(opts.workDir);
  const backend = await selectBackend(opts.backend);
  if (!opts.quiet) process.stderr.write(`${describeBackend(backend)}\n`);
  const w = await loadWeights(opts.preset, opts.weights, opts.seed);
  if (opts.attributes && ![...optionalParamShapes(cfg).attributes.keys()].every((n) => w.params.has(n))) {
    throw new UsageError(`--attributes: ${w.weights} has no attribute head (faster_rcnn_from_caffe_attr.pkl has one)`);
  }
  const settings: PartSettings = {
    preset: opts.preset,
    weights: w.weights,
    randomInit: w.randomInit,
    ...presetDims(cfg),
    ...(opts.attributes ? { numAttributes: cfg.numAttributes } : {}),
    minSize: opts.minSize ?? cfg.minSize,
    maxSize: opts.maxSize ?? cfg.maxSize,
    rule: opts.rule,
    form: opts.form,
    backend: backend.name,
    ...(backend.matmul ? { kernels: backend.matmul.kind } : {}),
  };
  if (!opts.quiet) {
    if (w.randomInit) process.stderr.write(`WARNING: ${randomInitNote(opts.seed)}\n`);
    const warning = widthWarning(opts.preset, settings);
    if (warning) process.stderr.write(`WARNING: ${warning}\n`);
  }
  const fingerprint = fingerprintOf(settings);
  const owned = manifest.segments.filter((e) => ownsUnit(opts.shard, e.seg));
  const markers: PartMarker[] = [];
  const todo: SegmentEntry[] = [];
  for (const e of owned) {
    const m = await readMarker(opts.workDir, e.seg);
    if (m && m.fingerprint === fingerprint && m.file === e.file && m.items === e.items) markers.push(m);
    else todo.push(e);
  }
  const skipped = markers.length;
  let processed = 0;
  let computeSeconds = 0;
  if (todo.length) {
    if (opts.signal?.aborted) throw new InterruptedError('interrupted');
    const pool = await DetectorPool.start({
      workers,
      config: cfg,
      backend: backend.name,
      params: shareParams(w.params),
      rule: opts.rule,
      form: opts.form,
      attributes: opts.attributes ?? false,
    });
    const stop = () => void pool.close(new InterruptedError('interrupted'));
    opts.signal?.addEventListener('abort', stop, { once: true });
    const progress = createProgress('region-features', todo.reduce((a, e) => a + e.items, 0), { quiet: opts.quiet });
    const tc = performance.now();
    try {
      for (const e of todo) {
        const r = await runSegment(opts.workDir, e, pool, settings, opts, progress);
        markers.push(r.marker);
        processed += r.processed;
      }
    } finally {
      opts.signal?.removeEventListener('abort', stop);
      progress.stop();
      await pool.close();
    }
    computeSeconds = (performance.now() - tc) / 1000;
  }
  markers.sort((a, b) => a.seg - b.seg);
  const allDone = (await Promise.all(manifest.segments.map((e) => readMarker(opts.workDir, e.seg)))).every(
    (m, i) => m && m.fingerprint === fingerprint && m.file === manifest.segments[i]!.file,
  );
  const facts = (merged: boolean, outputs: string[]): RunFacts => ({
    seconds: (performance.now() - t0) / 1000,
    processed,
    computeSeconds,
    skipped,
    workers: todo.length ? workers : 0,
    shard: opts.shard,
    merged,
    outputs,
    backend: describeBackend(backend),
  });
  // A shard always leaves its own report (a scheduler takes it as "this shard is done"), also
  // when it is the last one and merges.
  const own = buildReport(shardCounts(markers), markers, settings, facts(false, []));
  if (opts.shard.count > 1 || !allDone) await writeReport(opts.workDir, STAGE + shardSuffix(opts.shard), own);
  if (!allDone) return own;
  const merged = await mergeParts(opts.workDir);
  const report = buildReport(merged.counts, merged.markers, settings, facts(true, merged.outputs));
  await writeReport(opts.workDir, STAGE, report);
  return report;
}

/** `merge`: the outputs from every segment's part (after sharded runs), with a report. */
export async function merge(workDir: string): Promise<ExtractReport> {
  const t0 = performance.now();
  const { markers, outputs, counts } = await mergeParts(workDir);
  if (!markers.length) throw new IoError(join(workDir, 'segments.json'), 'no segments to merge');
  const s = markers[0]!.settings;
  const report = buildReport(counts, markers, s, {
    seconds: (performance.now() - t0) / 1000,
    processed: 0,
    computeSeconds: 0,
    skipped: markers.length,
    workers: 0,
    shard: { index: 0, count: 1 },
    merged: true,
    outputs,
    backend: `backend: ${s.backend} (recorded in the parts)`,
  });
  await writeReport(workDir, STAGE, report);
  return report;
}

/** The report as a table for people. */
export function reportTable(r: ExtractReport): string {
  const rows: TableRow[] = [
    ['in (items read)', r.in],
    ['written', r.written],
    ['rejected', r.rejected],
    ...Object.entries(r.rejectedByReason).map(([k, v]) => [`  ${k}`, v] as TableRow),
    ['skipped: image-missing (no row)', r.imageMissing],
    ['reconciles', r.reconciles],
    ['segments (skipped as done)', `${r.segments} (${r.segmentsSkipped})`],
    ['images run now', r.imagesProcessed],
    ['images/s', r.imagesPerSecond],
    ['workers', r.workers],
    ['backend', r.backend.replace(/^backend: /, '')],
    ['preset', r.preset],
    ['features x classes', `${r.featureDim} x ${r.numClasses}`],
    ['K3M loader reads it', r.k3mReadable],
    ['weights', r.weights],
    ['rule', r.rule],
    ['attr_prob column', r.numAttributes ? `${r.numAttributes} attributes` : 'no'],
    ['image size', `${r.minSize}/${r.maxSize}`],
    ['merged', r.merged],
    ['seconds', r.seconds],
  ];
  const notes = [r.randomInit ? `NOTE: ${r.note}` : '', r.widthWarning ? `WARNING: ${r.widthWarning}` : ''].filter(Boolean);
  return [formatTable(`${STAGE} extract`, rows), ...notes].join('\n');
}

/**
 * @file The `extract` stage: every image of this shard's segments through the detector, one
 * feature row per image into the segment's part, then (when every segment is done) the merge
 * into `image_features/{train,dev}.tsv.0`, `rejects/region-features.jsonl`, `meta.json` and
 * `reports/region-features.json`.
 */
import { closeSync, existsSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  AtomicWriter,
  CappedCounter,
  IoError,
  UsageError,
  createProgress,
  finishReport,
  formatTable,
  ownsUnit,
  shardSuffix,
  writeFileAtomic,
  writeReport,
  type RejectRecord,
  type Shard,
  type StageReportBase,
  type TableRow,
} from '@k3m-kit/core';
import { readManifest, readSegmentFile, type SegmentEntry } from '@k3m-kit/raw-ingest';
import { describeBackend, selectBackend } from '@k3m-kit/core/backend';
import { encodeFeatureRow, featureTsvPath, writeFeatureMeta, type FeatureRow, type TsvForm } from './codecs/feature-tsv.ts';
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
import { decodeImage, ImageDecodeError, type DecodedImage } from './image.ts';
import type { SelectionRule } from './model/boxes.ts';
import { Detector } from './model/detector.ts';
import { optionalParamShapes } from './model/params.ts';
import { PRESETS, presetDims, type PresetName } from './model/presets.ts';
import { loadWeights, randomInitNote } from './weights.ts';

export const STAGE = 'region-features';

export interface ExtractOptions {
  workDir: string;
  shard: Shard;
  quiet: boolean;
  preset: PresetName;
  /** `.safetensors` (from convert-weights) or a detectron2 `.pkl`; absent: random init (small preset only). */
  weights?: string;
  seed: number;
  /** Shorter side / longer-side cap; the preset's when absent. */
  minSize?: number;
  maxSize?: number;
  rule: SelectionRule;
  form: TsvForm;
  backend?: string;
  /** Images decoded ahead of the model. */
  prefetch: number;
  /** Also write each box's attribute probabilities (`attr_prob`, needs the `_attr` weights). */
  attributes?: boolean;
}

/**
 * One image through the detector: the TSV row (boxes rescaled to the raw image, as
 * detectron2's detector_postprocess does) or the reason it cannot be written.
 */
export async function extractImage(
  det: Detector,
  imageId: string,
  img: DecodedImage,
  rule: SelectionRule,
  attributes = false,
): Promise<FeatureRow | { reason: string; detail: string }> {
  const input = det.preprocess(img.rgb, img.h, img.w);
  let out;
  try {
    out = await det.run(input, rule, attributes);
  } finally {
    input.dispose();
  }
  const n = out.keep.length;
  const d = det.config.out[3];
  const k = det.config.numClasses;
  const boxes = new Float32Array(n * 4);
  const features = new Float32Array(n * d);
  const clsProb = new Float32Array(n * k);
  const na = det.config.numAttributes;
  const attrProb = attributes ? new Float32Array(n * na) : undefined;
  const sx = img.rawW / img.w;
  const sy = img.rawH / img.h;
  out.keep.forEach((r, i) => {
    boxes[i * 4] = Math.min(Math.max(out.boxes[i * 4]! * sx, 0), img.rawW);
    boxes[i * 4 + 1] = Math.min(Math.max(out.boxes[i * 4 + 1]! * sy, 0), img.rawH);
    boxes[i * 4 + 2] = Math.min(Math.max(out.boxes[i * 4 + 2]! * sx, 0), img.rawW);
    boxes[i * 4 + 3] = Math.min(Math.max(out.boxes[i * 4 + 3]! * sy, 0), img.rawH);
    features.set(out.features.subarray(r * d, (r + 1) * d), i * d);
    clsProb.set(out.probs.subarray(r * k, (r + 1) * k), i * k);
    attrProb?.set(out.attrProbs!.subarray(r * na, (r + 1) * na), i * na);
  });
  const arrays: [string, Float32Array][] = [['features', features], ['cls_prob', clsProb], ['boxes', boxes]];
  if (attrProb) arrays.push(['attr_prob', attrProb]);
  for (const [name, a] of arrays) {
    if (!a.every(Number.isFinite)) return { reason: 'nan-features', detail: `${name} contains NaN or infinity` };
  }
  const row: FeatureRow = { imageId, imageW: img.rawW, imageH: img.rawH, numBoxes: n, boxes, features, clsProb };
  if (attrProb) row.attrProb = attrProb;
  return row;
}

interface SegmentRun {
  marker: PartMarker;
  /** Images run through the detector now (not found done in the part). */
  processed: number;
}

async function runSegment(
  workDir: string,
  e: SegmentEntry,
  det: Detector,
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
  const doneLines = await recoverLines(paths.tsv);
  const rejectLines = await recoverLines(paths.rejects);
  const done = new Set(doneLines.map((l) => l.slice(0, l.indexOf('\t'))));
  const reasons = new CappedCounter();
  for (const l of rejectLines) {
    const r = JSON.parse(l) as RejectRecord;
    done.add(r.id ?? '');
    reasons.add(r.reason);
  }
  let written = doneLines.length;
  let items = 0;
  let missing = 0;
  let processed = 0;
  const tsvFd = openSync(paths.tsv, 'a');
  const rejFd = openSync(paths.rejects, 'a');
  const source = e.file;
  try {
    type Pending = { imageId: string; line: number; img: Promise<DecodedImage | ImageDecodeError> };
    const queue: Pending[] = [];
    const handle = async (p: Pending) => {
      const img = await p.img;
      const res = img instanceof ImageDecodeError ? { reason: 'decode-failed', detail: img.message } : await extractImage(det, p.imageId, img, opts.rule, opts.attributes);
      if ('reason' in res) {
        const rec: RejectRecord = { source, line: p.line, reason: res.reason, detail: res.detail, id: p.imageId };
        writeSync(rejFd, JSON.stringify(rec) + '\n');
        reasons.add(res.reason);
      } else {
        writeSync(tsvFd, encodeFeatureRow(res, opts.form) + '\n');
        written++;
      }
      processed++;
      progress.increment();
    };
    const { minSize, maxSize } = settings;
    for await (const row of readSegmentFile(join(workDir, e.file))) {
      items++;
      if (row.pic === '') {
        missing++;
        progress.increment();
        continue;
      }
      if (done.has(row.imageId)) {
        progress.increment();
        continue;
      }
      const img = decodeImage(join(workDir, 'image', row.pic), minSize, maxSize).catch((err: unknown) =>
        err instanceof ImageDecodeError ? err : new ImageDecodeError(String(err)),
      );
      queue.push({ imageId: row.imageId, line: row.line, img });
      if (queue.length > opts.prefetch) await handle(queue.shift()!);
    }
    while (queue.length) await handle(queue.shift()!);
    fsyncSync(tsvFd);
    fsyncSync(rejFd);
  } finally {
    closeSync(tsvFd);
    closeSync(rejFd);
  }
  if (items !== e.items) throw new IoError(join(workDir, e.file), `has ${items} items, segments.json says ${e.items}`);
  const marker: PartMarker = {
    fingerprint,
    settings,
    seg: e.seg,
    split: e.split,
    file: e.file,
    items,
    in: written + reasons.total,
    written,
    rejected: reasons.total,
    imageMissing: missing,
    rejectedByReason: reasons.toJSON(),
  };
  await writeMarker(workDir, marker);
  return { marker, processed };
}

export interface ExtractReport extends StageReportBase {
  /** Items in the segments covered, image-missing ones included (they get no row). */
  items: number;
  imageMissing: number;
  segments: number;
  segmentsSkipped: number;
  /** Images decoded and run through the detector by this run, and their rate. */
  imagesProcessed: number;
  imagesPerSecond: number;
  backend: string;
  preset: string;
  weights: string;
  randomInit: boolean;
  /** Plain words on what the features are. */
  note: string;
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

/** Sums markers into the report's counts. */
function totals(markers: PartMarker[]) {
  const reasons = new CappedCounter();
  let items = 0;
  let missing = 0;
  let written = 0;
  for (const m of markers) {
    items += m.items;
    missing += m.imageMissing;
    written += m.written;
    for (const [k, v] of Object.entries(m.rejectedByReason)) reasons.add(k, v);
  }
  return { items, imageMissing: missing, written, rejected: reasons.total, rejectedByReason: reasons.toJSON() };
}

/**
 * Concatenates every segment's part, in manifest order, into the K3M-named outputs. Throws an
 * {@link IoError} naming the segments that are not done (or done with other options).
 */
export async function mergeParts(workDir: string): Promise<{ markers: PartMarker[]; outputs: string[] }> {
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
  const outputs: string[] = [];
  const concat = async (target: string, files: string[]) => {
    const w = await AtomicWriter.create(target);
    try {
      for (const f of files) if (existsSync(f)) await w.write(await readFile(f));
      await w.commit();
    } catch (e) {
      await w.abort();
      throw new IoError(target, e);
    }
    outputs.push(target);
  };
  for (const split of ['train', 'val'] as const) {
    const segs = markers.filter((m) => m.split === split);
    if (segs.length) await concat(featureTsvPath(workDir, split, 0), segs.map((m) => partPaths(workDir, m.seg).tsv));
  }
  await concat(join(workDir, 'rejects', `${STAGE}.jsonl`), markers.map((m) => partPaths(workDir, m.seg).rejects));
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
  return { markers, outputs };
}

function buildReport(markers: PartMarker[], s: PartSettings, extra: { seconds: number; processed: number; computeSeconds: number; skipped: number; shard: Shard; merged: boolean; outputs: string[]; backend: string }): ExtractReport {
  const t = totals(markers);
  return finishReport({
    stage: STAGE,
    in: t.written + t.rejected,
    written: t.written,
    rejected: t.rejected,
    rejectedByReason: t.rejectedByReason,
    seconds: extra.seconds,
    items: t.items,
    imageMissing: t.imageMissing,
    segments: markers.length,
    segmentsSkipped: extra.skipped,
    imagesProcessed: extra.processed,
    imagesPerSecond: extra.computeSeconds > 0 ? extra.processed / extra.computeSeconds : 0,
    backend: extra.backend,
    preset: s.preset,
    weights: s.weights,
    randomInit: s.randomInit,
    note: noteFor(s),
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
  });
}

/**
 * Runs the stage for `opts.shard`: segments already done with the same options are skipped,
 * a half-written segment is finished; when every segment of the manifest is done the outputs
 * are merged. A shard of N writes `reports/region-features.shard-i-of-N.json`; the merge writes
 * `reports/region-features.json`.
 */
export async function extract(opts: ExtractOptions): Promise<ExtractReport> {
  const t0 = performance.now();
  const cfg = PRESETS[opts.preset];
  if (!cfg) throw new UsageError(`--preset ${opts.preset}: must be one of ${Object.keys(PRESETS).join(', ')}`);
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
  };
  if (w.randomInit && !opts.quiet) process.stderr.write(`WARNING: ${randomInitNote(opts.seed)}\n`);
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
    const det = new Detector(cfg, w.params);
    const progress = createProgress('region-features', todo.reduce((a, e) => a + e.items, 0), { quiet: opts.quiet });
    const tc = performance.now();
    try {
      for (const e of todo) {
        const r = await runSegment(opts.workDir, e, det, settings, opts, progress);
        markers.push(r.marker);
        processed += r.processed;
      }
    } finally {
      progress.stop();
      det.dispose();
    }
    computeSeconds = (performance.now() - tc) / 1000;
  }
  markers.sort((a, b) => a.seg - b.seg);
  const allDone = (await Promise.all(manifest.segments.map((e) => readMarker(opts.workDir, e.seg)))).every(
    (m, i) => m && m.fingerprint === fingerprint && m.file === manifest.segments[i]!.file,
  );
  const reportOf = (ms: PartMarker[], merged: boolean, outputs: string[]) =>
    buildReport(ms, settings, {
      seconds: (performance.now() - t0) / 1000,
      processed,
      computeSeconds,
      skipped,
      shard: opts.shard,
      merged,
      outputs,
      backend: describeBackend(backend),
    });
  // A shard always leaves its own report (a scheduler takes it as "this shard is done"), also
  // when it is the last one and merges.
  const own = reportOf(markers, false, []);
  if (opts.shard.count > 1 || !allDone) await writeReport(opts.workDir, STAGE + shardSuffix(opts.shard), own);
  if (!allDone) return own;
  const merged = await mergeParts(opts.workDir);
  const report = reportOf(merged.markers, true, merged.outputs);
  await writeReport(opts.workDir, STAGE, report);
  return report;
}

/** `merge`: the outputs from every segment's part (after sharded runs), with a report. */
export async function merge(workDir: string): Promise<ExtractReport> {
  const t0 = performance.now();
  const { markers, outputs } = await mergeParts(workDir);
  if (!markers.length) throw new IoError(join(workDir, 'segments.json'), 'no segments to merge');
  const s = markers[0]!.settings;
  const report = buildReport(markers, s, {
    seconds: (performance.now() - t0) / 1000,
    processed: 0,
    computeSeconds: 0,
    skipped: markers.length,
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
    ['items', r.items],
    ['image-missing (no row)', r.imageMissing],
    ['in (items with an image)', r.in],
    ['written', r.written],
    ['rejected', r.rejected],
    ...Object.entries(r.rejectedByReason).map(([k, v]) => [`  ${k}`, v] as TableRow),
    ['reconciles', r.reconciles],
    ['segments (skipped as done)', `${r.segments} (${r.segmentsSkipped})`],
    ['images run now', r.imagesProcessed],
    ['images/s', r.imagesPerSecond],
    ['backend', r.backend.replace(/^backend: /, '')],
    ['preset', r.preset],
    ['weights', r.weights],
    ['rule', r.rule],
    ['attr_prob column', r.numAttributes ? `${r.numAttributes} attributes` : 'no'],
    ['image size', `${r.minSize}/${r.maxSize}`],
    ['merged', r.merged],
    ['seconds', r.seconds],
  ];
  return formatTable(`${STAGE} extract`, rows) + (r.randomInit ? `\nNOTE: ${r.note}` : '');
}

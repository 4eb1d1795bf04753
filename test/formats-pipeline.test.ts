/**
 * P9D, Product1M and TaiSu samples (tools' `makeFormatSample`, every fault planted once) through
 * the whole pipeline to LMDB: raw-ingest build-data, kg-triples build, region-features extract
 * (small-c4, random weights, wasm, small images: the cheapest settings) and lmdb-writer convert.
 *
 * Per format the test counts the input records itself from the files (lines, JSON member lines,
 * tar listings), checks that build-data's report reconciles with that count, that every planted
 * fault comes out with its reason and position, and that the LMDB holds every written item, with
 * the format's extra field in each record.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WHOLE } from '@k3m-kit/core';
import { build } from '@k3m-kit/kg-triples';
import { convert, lmdbPath, RecordReader, type K3mRecord } from '@k3m-kit/lmdb-writer';
import { buildData, readItems, readManifest, readSegmentStatus, type BuildDataReport, type ItemRow } from '@k3m-kit/raw-ingest';
import { extract } from '@k3m-kit/region-features';
import { makeFormatSample, type FormatFaultsFile, type SampleFormat } from '@k3m-kit/tools';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'k3m-formats-e2e-'));
});
afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

/** Records in the input files, counted here without raw-ingest's codecs. */
async function countRecords(format: SampleFormat, dir: string, faults: FormatFaultsFile): Promise<number> {
  let n = 0;
  for (const { file } of faults.inputs) {
    const path = join(dir, file);
    if (/\.(tar|tgz)$/.test(file)) {
      // Members that served no item are records too: the test lists the archive with tar(1) and
      // takes the members the reject log names.
      const listing = spawnSync('tar', ['-tf', path], { encoding: 'utf8' }).stdout.split('\n').filter((m) => m !== '' && !m.endsWith('/'));
      n += faults.faults.filter((f) => f.file === file && f.effect === 'rejected' && (f.member === undefined || listing.includes(f.member))).length;
      continue;
    }
    const text = await readFile(path, 'utf8');
    if (format === 'product1m') n += text.split('\n').filter((l) => l.replace(/\r$/, '') !== '').length;
    // JSON: one member per line in these files; a group line (`"domain": {`) is not an item.
    else n += text.split('\n').filter((l) => /^\s*"[^"]*":/.test(l) && !/:\s*\{\s*$/.test(l)).length;
  }
  return n;
}

interface Run {
  faults: FormatFaultsFile;
  dir: string;
  workDir: string;
  report: BuildDataReport;
  items: ItemRow[];
  rejects: Record<string, unknown>[];
  records: K3mRecord[];
}

async function runPipeline(format: SampleFormat): Promise<Run> {
  const dir = join(root, `raw-${format}`);
  const workDir = join(root, `work-${format}`);
  const faults = await makeFormatSample({ out: dir, format });
  const input = faults.inputs.map((i) => `${join(dir, i.file)}${i.role ? `:${i.role}` : ''}`);
  const { report } = await buildData({ workDir, input, quiet: true, segmentSize: 8, ...(format === 'taisu' ? { valRatio: 0.25 } : {}) });
  await build({ workDir, quiet: true });
  await extract({ workDir, shard: WHOLE, quiet: true, preset: 'small-c4', seed: 0, rule: 'k3m', form: 'k3m', backend: 'wasm', prefetch: 2, minSize: 48, maxSize: 64 });
  await convert({ workDir, shard: WHOLE, missingImage: 'keep', fp16: false, clsProb: true, batchRecords: 64, batchMb: 64, verifySample: 4, quiet: true });
  const items: ItemRow[] = [];
  for await (const r of readItems(workDir)) items.push(r);
  const text = await readFile(join(workDir, 'rejects', 'build-data.jsonl'), 'utf8');
  const rejects = text.trim() === '' ? [] : text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const records: K3mRecord[] = [];
  for (const split of ['train', 'val'] as const) {
    const reader = RecordReader.open(lmdbPath(workDir, split));
    records.push(...reader);
    reader.close();
  }
  return { faults, dir, workDir, report, items, rejects, records };
}

/** The checks every format shares. */
async function checkRun(format: SampleFormat, run: Run, extraKey: 'domain' | 'instanceLabels' | 'captionSource') {
  const { faults, report, items, rejects, records } = run;
  expect(report.in).toBe(await countRecords(format, run.dir, faults));
  expect(report).toMatchObject({ written: items.length, rejected: rejects.length, reconciles: true });
  for (const f of faults.faults.filter((x) => x.effect === 'rejected')) {
    const at = { ...(f.line !== undefined ? { line: f.line } : {}), ...(f.entry !== undefined ? { entry: f.entry } : {}), ...(f.member !== undefined ? { member: f.member } : {}) };
    const hit = rejects.find((r) => basename(String(r.source)) === f.file && r.reason === f.reason && Object.entries(at).every(([k, v]) => r[k] === v));
    expect(hit, `${f.kind} in ${f.file} ${JSON.stringify(at)}`).toBeDefined();
  }
  // Image-missing faults: the item is kept, and its segment status names the planted reason.
  const missing = new Map<string, string>();
  for (const e of (await readManifest(run.workDir)).segments) {
    for (const m of (await readSegmentStatus(run.workDir, e.seg))!.missing) missing.set(m.itemId, m.reason);
  }
  for (const f of faults.faults.filter((x) => x.effect === 'image-missing')) expect(missing.get(f.id!), f.kind).toBe(f.reason);
  expect(report.images.missing).toBe(missing.size);
  // The LMDB: every written item once, image-missing ones without boxes, the extra field in each.
  expect(records.map((r) => r.imageId).sort()).toEqual(items.map((r) => r.imageId).sort());
  const byId = new Map(items.map((r) => [r.imageId, r]));
  for (const r of records) {
    const row = byId.get(r.imageId)!;
    expect(r.caption).toBe(row.title);
    expect(r.numBoxes === 0).toBe(row.pic === '');
    expect(r.extra?.[extraKey], r.imageId).toBeDefined();
    expect(r.extra).toEqual(row.extra);
  }
}

describe('other dataset formats through the whole pipeline', () => {
  it('Product1M: instance labels reach the LMDB', async () => {
    const run = await runPipeline('product1m');
    await checkRun('product1m', run, 'instanceLabels');
    expect(run.records.some((r) => (r.extra?.instanceLabels?.length ?? 0) > 1)).toBe(true);
  });

  it('P9D: the product domain reaches the LMDB', async () => {
    const run = await runPipeline('p9d');
    await checkRun('p9d', run, 'domain');
    expect(new Set(run.records.map((r) => r.extra?.domain)).size).toBeGreaterThan(1);
  });

  it('TaiSu: images straight from .tar/.tgz, the caption source reaches the LMDB', async () => {
    const run = await runPipeline('taisu');
    await checkRun('taisu', run, 'captionSource');
    expect(run.records.every((r) => r.extra?.captionSource === 'w')).toBe(true);
  });
});

/**
 * The extract stage on tiny work dirs (small-c4, random weights, wasm): accounting, rejects,
 * meta.json, sharded runs merging to the bytes of one run, resume after SIGKILL mid-segment,
 * and the CLI's exit codes.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { f32, WHOLE, writeSafetensors, type RawTensor } from '@k3m-kit/core';
import { featureTsvPath, readFeatureMeta, readFeatureTsv } from '../src/codecs/feature-tsv.ts';
import { partPaths } from '../src/codecs/feature-parts.ts';
import { selectBackend } from '@k3m-kit/core/backend';
import { extract, merge, type ExtractOptions } from '../src/extract.ts';
import { extractImage } from '../src/extract-image.ts';
import { Detector } from '../src/model/detector.ts';
import { optionalParamShapes, paramShapes, randomParams } from '../src/model/params.ts';
import { PRESETS } from '../src/model/presets.ts';
import { makeTinyWorkDir, REPO_ROOT } from '../src/testing.ts';

const BIN = join(REPO_ROOT, 'packages/region-features/bin/region-features.js');
let root: string;
const opts = (workDir: string, o: Partial<ExtractOptions> = {}): ExtractOptions => ({
  workDir,
  shard: WHOLE,
  quiet: true,
  preset: 'small-c4',
  seed: 0,
  rule: 'k3m',
  form: 'k3m',
  backend: 'wasm',
  prefetch: 2,
  ...o,
});
const img = (w: number, h: number) => ({ image: { w, h } });

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'rf-extract-'));
  await makeTinyWorkDir(join(root, 'base'), [
    { split: 'train', items: [img(64, 48), { image: 'missing' }, img(40, 70), { image: 'corrupt' }] },
    { split: 'val', items: [img(50, 50), img(80, 40)] },
    { split: 'train', items: [img(48, 64), { image: 'missing' }] },
  ]);
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function copyBase(name: string): Promise<string> {
  const d = join(root, name);
  await cp(join(root, 'base'), d, { recursive: true });
  return d;
}

const outputs = (d: string) => [featureTsvPath(d, 'train'), featureTsvPath(d, 'val'), join(d, 'rejects/region-features.jsonl')];

describe('extract', () => {
  let single: string;
  beforeAll(async () => {
    single = await copyBase('single');
    await extract(opts(single));
  }, 60_000);

  it('accounts for every item: rows, rejects, image-missing', async () => {
    const r = JSON.parse(await readFile(join(single, 'reports/region-features.json'), 'utf8'));
    expect(r).toMatchObject({ items: 8, imageMissing: 2, in: 6, written: 5, rejected: 1, reconciles: true, merged: true });
    expect(r.rejectedByReason).toEqual({ 'decode-failed': 1 });
    expect(r.randomInit).toBe(true);
    expect(r.note).toMatch(/random initialisation/);
    expect(r.backend).toMatch(/wasm/);
    expect(r.imagesPerSecond).toBeGreaterThan(0);
    const rej = (await readFile(join(single, 'rejects/region-features.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    expect(rej).toEqual([expect.objectContaining({ source: 'id_title_pvs_cls.txt0', line: 4, reason: 'decode-failed', id: '3_s0' })]);
  });

  it('writes K3M-form TSVs in item order with raw sizes, and meta.json with the widths', async () => {
    const meta = await readFeatureMeta(single);
    expect(meta).toEqual({ featureDim: 256, numClasses: 101, maxBoxes: 36, preset: 'small-c4', weights: 'random-init seed 0', form: 'k3m' });
    const rows = [];
    for await (const l of readFeatureTsv(featureTsvPath(single, 'train'), meta)) {
      if (!l.ok) throw new Error(l.detail);
      expect(l.form).toBe('k3m');
      rows.push(l.row);
    }
    expect(rows.map((r) => [r.imageId, r.imageW, r.imageH])).toEqual([
      ['0_s0', 64, 48],
      ['2_s0', 40, 70],
      ['0_s2', 48, 64],
    ]);
    for (const r of rows) {
      expect(r.numBoxes).toBeGreaterThan(0);
      expect(r.numBoxes).toBeLessThanOrEqual(36);
      for (let i = 0; i < r.numBoxes; i++) {
        const [x1, y1, x2, y2] = r.boxes.subarray(i * 4, i * 4 + 4);
        expect(0 <= x1! && x1! <= x2! && x2! <= r.imageW && 0 <= y1! && y1! <= y2! && y2! <= r.imageH).toBe(true);
        const p = r.clsProb.subarray(i * 101, (i + 1) * 101).reduce((a, b) => a + b, 0);
        expect(p).toBeCloseTo(1, 4);
      }
    }
  });

  it('a rerun skips done segments and gives the same bytes', async () => {
    const before = await Promise.all(outputs(single).map((p) => readFile(p)));
    const r = await extract(opts(single));
    expect(r.segmentsSkipped).toBe(3);
    expect(r.imagesProcessed).toBe(0);
    const after = await Promise.all(outputs(single).map((p) => readFile(p)));
    expect(after).toEqual(before);
  }, 60_000);

  it('shards 0/2 and 1/2 merge to the bytes of one run', async () => {
    const d = await copyBase('sharded');
    const r0 = await extract(opts(d, { shard: { index: 0, count: 2 } }));
    expect(r0.merged).toBe(false);
    expect(existsSync(join(d, 'reports/region-features.shard-0-of-2.json'))).toBe(true);
    expect(existsSync(featureTsvPath(d, 'train'))).toBe(false);
    const r1 = await extract(opts(d, { shard: { index: 1, count: 2 } }));
    expect(r1.merged).toBe(true);
    // The last shard merges and still leaves its own report: schedulers read it as "shard done".
    expect(JSON.parse(await readFile(join(d, 'reports/region-features.shard-1-of-2.json'), 'utf8'))).toMatchObject({ shard: '1/2', merged: false, segments: 1 });
    for (const [a, b] of outputs(d).map((p, i) => [p, outputs(single)[i]!])) expect(await readFile(a!)).toEqual(await readFile(b!));
    const m = await merge(d);
    expect(m).toMatchObject({ in: 6, written: 5, rejected: 1, reconciles: true });
    expect(await readFile(outputs(d)[0]!)).toEqual(await readFile(outputs(single)[0]!));
  }, 60_000);

  it('other options redo the parts (bare form, adaptive rule)', async () => {
    const d = await copyBase('bare');
    await extract(opts(d));
    const r = await extract(opts(d, { form: 'bare', rule: 'adaptive' }));
    expect(r.segmentsSkipped).toBe(0);
    const line = (await readFile(featureTsvPath(d, 'val'), 'utf8')).split('\n')[0]!;
    expect(line.split('\t')[4]!.startsWith("b'")).toBe(false);
    expect(Number(line.split('\t')[3])).toBeGreaterThanOrEqual(10);
    expect((await readFeatureMeta(d)).form).toBe('bare');
  }, 60_000);
});

describe('--attributes (the attribute head of the _attr checkpoints)', () => {
  const hasNumpy = spawnSync('/usr/bin/python3', ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0;
  let d: string;
  beforeAll(async () => {
    const c = PRESETS['small-c4'];
    const tensors = new Map<string, RawTensor>();
    for (const [n, a] of randomParams(c, 0)) tensors.set(n, f32(paramShapes(c).get(n)!, a));
    for (const [n, shape] of optionalParamShapes(c).attributes) {
      const a = Float32Array.from({ length: shape.reduce((x, y) => x * y, 1) }, (_, i) => 0.3 * Math.sin(i * 12.9898 + shape.length));
      tensors.set(n, f32(shape, a));
    }
    d = await copyBase('attributes');
    await writeSafetensors(join(d, 'small-attr.safetensors'), tensors);
    await extract(opts(d, { weights: join(d, 'small-attr.safetensors'), attributes: true }));
  }, 60_000);

  it('adds an attr_prob column of 401 probabilities per box, summing to 1, and says so in meta.json', async () => {
    const meta = await readFeatureMeta(d);
    expect(meta).toMatchObject({ featureDim: 256, numClasses: 101, numAttributes: 401 });
    const text = await readFile(featureTsvPath(d, 'train'), 'utf8');
    expect(text.split('\n')[0]!.split('\t')).toHaveLength(8);
    let rows = 0;
    for await (const l of readFeatureTsv(featureTsvPath(d, 'train'), meta)) {
      if (!l.ok) throw new Error(l.detail);
      const r = l.row;
      expect(r.attrProb).toHaveLength(r.numBoxes * 401);
      for (let i = 0; i < r.numBoxes; i++) expect(r.attrProb!.subarray(i * 401, (i + 1) * 401).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 4);
      rows++;
    }
    expect(rows).toBe(3);
  });

  it.skipIf(!hasNumpy)("the 8-column TSV still reads in K3M's loader (csv.DictReader with its 7 FIELDNAMES)", () => {
    if (!hasNumpy) return;
    const py = spawnSync('/usr/bin/python3', [join(REPO_ROOT, 'tools/golden/read_k3m_tsv.py'), featureTsvPath(d, 'train'), '256', '101'], { encoding: 'utf8' });
    expect(py.status, py.stderr).toBe(0);
    const got = py.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(got.map((r) => r.imageId)).toEqual(['0_s0', '2_s0', '0_s2']);
    for (const r of got) expect(r.clsProbSum).toBeCloseTo(r.numBoxes, 3);
  });

  it('weights without an attribute head are refused with a usage error naming --attributes', async () => {
    const e = await copyBase('no-attributes');
    await expect(extract(opts(e, { attributes: true }))).rejects.toThrow(/--attributes: random-init seed 0 has no attribute head/);
  });
});

describe('extractImage', () => {
  it('turns non-finite outputs into a nan-features reason, never a row', async () => {
    await selectBackend('wasm');
    const params = randomParams(PRESETS['small-c4'], 0);
    params.get('roi_heads.box_predictor.cls_score.bias')!.fill(NaN);
    const det = new Detector(PRESETS['small-c4'], params);
    const rgb = new Uint8Array(64 * 80 * 3).fill(128);
    const r = await extractImage(det, 'x', { rgb, h: 64, w: 80, rawH: 32, rawW: 40 }, 'k3m');
    det.dispose();
    expect(r).toMatchObject({ reason: 'nan-features' });
  }, 60_000);
});

describe('resume after SIGKILL', () => {
  it('finishes a half-written segment to the same bytes as an uninterrupted run', async () => {
    const items = Array.from({ length: 24 }, (_, k) => img(40 + k * 2, 60 - k));
    const a = join(root, 'killed');
    const b = join(root, 'clean');
    await makeTinyWorkDir(a, [{ split: 'train', items }]);
    await cp(a, b, { recursive: true });
    const args = ['extract', '--work-dir', a, '--backend', 'wasm', '--quiet'];
    const child = spawn(process.execPath, [BIN, ...args], { stdio: 'ignore' });
    const part = partPaths(a, 0).tsv;
    const lines = async () => (existsSync(part) ? (await readFile(part, 'utf8')).split('\n').length - 1 : 0);
    while ((await lines()) < 3 && child.exitCode === null) await new Promise((r) => setTimeout(r, 20));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const partial = await lines();
    expect(partial).toBeGreaterThanOrEqual(3);
    expect(partial).toBeLessThan(24);
    expect(existsSync(partPaths(a, 0).marker)).toBe(false);

    const resumed = spawnSync(process.execPath, [BIN, ...args, '--json'], { encoding: 'utf8' });
    expect(resumed.status, resumed.stderr).toBe(0);
    const report = JSON.parse(resumed.stdout);
    expect(report.imagesProcessed).toBe(24 - partial);
    expect(report).toMatchObject({ in: 24, written: 24, reconciles: true });
    await extract(opts(b));
    expect(await readFile(featureTsvPath(a, 'train'))).toEqual(await readFile(featureTsvPath(b, 'train')));
    expect((await stat(featureTsvPath(a, 'train'))).size).toBeGreaterThan(0);
    expect((await readdir(join(a, 'image_features'))).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  }, 120_000);
});

describe('CLI', () => {
  const run = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  it('rejects bad options with exit 2 and a message naming the option', () => {
    const r = run('extract', '--work-dir', join(root, 'base'), '--shard', '3/2');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--shard 3\/2/);
    const w = run('extract', '--work-dir', join(root, 'base'), '--preset', 'bua-r101-c4', '--quiet');
    expect(w.status).toBe(2);
    expect(w.stderr).toMatch(/--weights: preset bua-r101-c4 needs converted weights/);
  }, 60_000);
  it('exits 1 naming the file when there is no segments.json', () => {
    const r = run('extract', '--work-dir', join(root, 'nowhere'), '--quiet');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/segments\.json/);
  }, 60_000);
});

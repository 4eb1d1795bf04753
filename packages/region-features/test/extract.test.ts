/**
 * The extract stage on tiny work dirs (small-c4, random weights, wasm): counts against the
 * input counted here from the segment files, rejects, meta.json, sharded runs merging to the
 * bytes of one run, N workers giving the bytes of one, resume after SIGKILL and after Ctrl-C
 * mid-segment, and the CLI's exit codes.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CORRUPT_IMAGE_DETAIL, f32, WHOLE, writeSafetensors, type RawTensor } from '@k3m-kit/core';
import { featureTsvPath, readFeatureMeta, readFeatureTsv } from '../src/codecs/feature-tsv.ts';
import { fingerprintOf, partPaths, readMarker, writeMarker } from '../src/codecs/feature-parts.ts';
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
  workers: 2,
  ...o,
});
const img = (w: number, h: number) => ({ image: { w, h } });
/** Buffers compared as one boolean: a failing toEqual on megabytes would render a huge diff. */
const sameBytes = async (a: string, b: string) => (await readFile(a)).equals(await readFile(b));

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'rf-extract-'));
  await makeTinyWorkDir(join(root, 'base'), [
    { split: 'train', items: [img(64, 48), { image: 'missing' }, img(40, 70), { image: 'corrupt' }] },
    // 4000x1 decodes, but resizes to 416x0 at 256/416.
    { split: 'val', items: [img(50, 50), img(80, 40), img(4000, 1)] },
    { split: 'train', items: [img(48, 64), { image: 'missing' }, { image: 'truncated' }, { image: 'absent' }] },
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

/** The input counted here, from the segment files as text: items, and items with no image. */
async function countInput(d: string): Promise<{ items: number; missing: number }> {
  let items = 0;
  let missing = 0;
  for (const f of (await readdir(d)).filter((n) => n.startsWith('id_title_pvs_cls.txt'))) {
    for (const line of (await readFile(join(d, f), 'utf8')).split('\n')) {
      if (line === '') continue;
      items++;
      if (line.split('\t')[2] === '') missing++;
    }
  }
  return { items, missing };
}

/** Rows of both TSVs (every line must decode) and the reject log's records. */
async function readOutputs(d: string) {
  const meta = await readFeatureMeta(d);
  let rows = 0;
  for (const split of ['train', 'val'] as const) {
    for await (const l of readFeatureTsv(featureTsvPath(d, split), meta)) {
      if (!l.ok) throw new Error(l.detail);
      rows++;
    }
  }
  const rejects = (await readFile(join(d, 'rejects/region-features.jsonl'), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l));
  return { rows, rejects };
}

describe('extract', () => {
  let single: string;
  beforeAll(async () => {
    single = await copyBase('single');
    await extract(opts(single));
  }, 120_000);

  it('counts in at the source: in, written, rejected and image-missing match the files', async () => {
    const r = JSON.parse(await readFile(join(single, 'reports/region-features.json'), 'utf8'));
    const input = await countInput(single);
    const out = await readOutputs(single);
    expect(input).toEqual({ items: 11, missing: 2 });
    expect(r).toMatchObject({ in: input.items, written: out.rows, rejected: out.rejects.length, reconciles: true, merged: true });
    expect(r.skippedByReason).toEqual({ 'image-missing': input.missing });
    expect(input.items).toBe(out.rows + out.rejects.length + input.missing);
    expect(r.rejectedByReason).toEqual({ 'decode-failed': 3, 'unusable-size': 1 });
    expect(out.rejects).toEqual([
      expect.objectContaining({ source: 'id_title_pvs_cls.txt0', line: 4, reason: 'decode-failed', id: '3_s0', detail: 'Input buffer contains unsupported image format' }),
      expect.objectContaining({ source: 'id_title_pvs_cls.txt1', line: 3, reason: 'unusable-size', id: '2_s1', detail: expect.stringMatching(/4000x1 resizes to 416x0/) }),
      expect.objectContaining({ source: 'id_title_pvs_cls.txt2', line: 3, reason: 'decode-failed', id: '2_s2', detail: CORRUPT_IMAGE_DETAIL }),
      expect.objectContaining({ source: 'id_title_pvs_cls.txt2', line: 4, reason: 'decode-failed', id: '3_s2', detail: expect.stringMatching(/ENOENT/) }),
    ]);
    expect(r.randomInit).toBe(true);
    expect(r.note).toMatch(/random initialisation/);
    expect(r.k3mReadable).toBe(false);
    expect(r.widthWarning).toMatch(/256-d features over 101 classes: the original K3M loader reads only 2048-d features and 1601 class probabilities/);
    expect(r.backend).toMatch(/wasm/);
    expect(r.workers).toBe(2);
    expect(r.imagesPerSecond).toBeGreaterThan(0);
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
    expect(r.workers).toBe(0);
    const after = await Promise.all(outputs(single).map((p) => readFile(p)));
    expect(after.every((b, i) => b.equals(before[i]!))).toBe(true);
  }, 60_000);

  it('1 worker and 3 workers write the bytes of 2', async () => {
    for (const workers of [1, 3]) {
      const d = await copyBase(`workers-${workers}`);
      const r = await extract(opts(d, { workers }));
      expect(r.workers).toBe(workers);
      // The reject log compared as text, so a difference shows which line and field.
      const [tsvTrain, tsvVal, rejects] = outputs(d);
      expect(await readFile(rejects!, 'utf8'), rejects).toBe(await readFile(outputs(single)[2]!, 'utf8'));
      for (const [i, p] of [tsvTrain!, tsvVal!].entries()) expect(await sameBytes(p, outputs(single)[i]!), p).toBe(true);
    }
  }, 120_000);

  it('shards 0/2 and 1/2 merge to the bytes of one run, with counts folded from the parts', async () => {
    const d = await copyBase('sharded');
    const r0 = await extract(opts(d, { shard: { index: 0, count: 2 } }));
    expect(r0.merged).toBe(false);
    // Shard 0 owns segments 0 and 2: 8 items, 2 without an image, 3 rejected.
    expect(r0).toMatchObject({ in: 8, written: 3, rejected: 3, skippedByReason: { 'image-missing': 2 }, reconciles: true });
    expect(existsSync(join(d, 'reports/region-features.shard-0-of-2.json'))).toBe(true);
    expect(existsSync(featureTsvPath(d, 'train'))).toBe(false);
    const r1 = await extract(opts(d, { shard: { index: 1, count: 2 } }));
    expect(r1.merged).toBe(true);
    // The last shard merges and still leaves its own report: schedulers read it as "shard done".
    expect(JSON.parse(await readFile(join(d, 'reports/region-features.shard-1-of-2.json'), 'utf8'))).toMatchObject({ shard: '1/2', merged: false, segments: 1, in: 3, written: 2, rejected: 1 });
    for (const [i, p] of outputs(d).entries()) expect(await sameBytes(p, outputs(single)[i]!), p).toBe(true);
    const m = await merge(d);
    expect(m).toMatchObject({ in: 11, written: 5, rejected: 4, reconciles: true });
    expect(await sameBytes(outputs(d)[0]!, outputs(single)[0]!)).toBe(true);
  }, 120_000);

  it('the merge counts what it copies: a part that lost a row does not reconcile, and the CLI fails', async () => {
    const d = await copyBase('lost-row');
    await extract(opts(d));
    const part = partPaths(d, 0).tsv;
    const lines = (await readFile(part, 'utf8')).split('\n');
    await writeFile(part, lines.slice(1).join('\n'));
    const m = await merge(d);
    expect(m).toMatchObject({ in: 11, written: 4, rejected: 4, reconciles: false });
    const r = spawnSync(process.execPath, [BIN, 'merge', '--work-dir', d, '--quiet'], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/does not reconcile/);
  }, 120_000);

  it('parts made on the other convolution kernels (BLAS or XNNPACK round differently) are redone, not mixed in', async () => {
    const d = await copyBase('kernels');
    const first = await extract(opts(d));
    const kernels = (await selectBackend('wasm')).matmul?.kind;
    expect(kernels).toBeDefined();
    const other = kernels === 'blas' ? ('xnnpack' as const) : ('blas' as const);
    // As if an earlier run on the other kernels had left these parts.
    for (let seg = 0; seg < 3; seg++) {
      const m = (await readMarker(d, seg))!;
      expect(m.settings.kernels).toBe(kernels);
      const settings = { ...m.settings, kernels: other };
      await writeMarker(d, { ...m, settings, fingerprint: fingerprintOf(settings) });
      // The in-progress stamp extract writes (the fingerprint as text) before a segment's rows.
      await writeFile(partPaths(d, seg).started, fingerprintOf(settings));
    }
    const r = await extract(opts(d));
    expect(r.segmentsSkipped).toBe(0);
    expect(r.imagesProcessed).toBe(first.imagesProcessed);
    for (const [i, p] of outputs(d).entries()) expect(await sameBytes(p, outputs(single)[i]!), p).toBe(true);
  }, 120_000);

  it('other options redo the parts (bare form, adaptive rule)', async () => {
    const d = await copyBase('bare');
    await extract(opts(d));
    const r = await extract(opts(d, { form: 'bare', rule: 'adaptive' }));
    expect(r.segmentsSkipped).toBe(0);
    const line = (await readFile(featureTsvPath(d, 'val'), 'utf8')).split('\n')[0]!;
    expect(line.split('\t')[4]!.startsWith("b'")).toBe(false);
    expect(Number(line.split('\t')[3])).toBeGreaterThanOrEqual(10);
    expect((await readFeatureMeta(d)).form).toBe('bare');
  }, 120_000);
});

describe('--attributes (the attribute head of the _attr checkpoints)', () => {
  const hasNumpy = spawnSync('/usr/bin/python3', ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0;
  if (!hasNumpy) console.warn('SKIP 8-column TSV in K3M\'s loader: /usr/bin/python3 cannot import numpy (apt-get install python3-numpy)');
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
  }, 120_000);

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

describe('interrupted runs resume to the bytes of an uninterrupted one', () => {
  const items = Array.from({ length: 24 }, (_, k) => img(40 + k * 2, 60 - k));
  let clean: string;
  beforeAll(async () => {
    clean = join(root, 'clean');
    await makeTinyWorkDir(clean, [{ split: 'train', items }]);
    await extract(opts(clean));
  }, 120_000);

  const args = (d: string) => ['extract', '--work-dir', d, '--backend', 'wasm', '--preset', 'small-c4', '--workers', '2', '--quiet'];
  const lines = async (d: string) => (existsSync(partPaths(d, 0).tsv) ? (await readFile(partPaths(d, 0).tsv, 'utf8')).split('\n').length - 1 : 0);

  /** Starts the CLI, waits for 3 rows in the part, sends `signal`; resolves with the exit and the rows then. */
  async function interrupt(d: string, signal: NodeJS.Signals) {
    await makeTinyWorkDir(d, [{ split: 'train', items }]);
    const child = spawn(process.execPath, [BIN, ...args(d)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, sig) => r({ code, signal: sig })));
    while ((await lines(d)) < 3 && child.exitCode === null) await new Promise((r) => setTimeout(r, 20));
    const t = performance.now();
    child.kill(signal);
    const how = await exit;
    return { ...how, stderr, stopSeconds: (performance.now() - t) / 1000, partial: await lines(d) };
  }

  async function resumeAndCompare(d: string, partial: number) {
    expect(existsSync(partPaths(d, 0).marker)).toBe(false);
    const resumed = spawnSync(process.execPath, [BIN, ...args(d), '--json'], { encoding: 'utf8' });
    expect(resumed.status, resumed.stderr).toBe(0);
    const report = JSON.parse(resumed.stdout);
    expect(report.imagesProcessed).toBe(24 - partial);
    expect(report).toMatchObject({ in: 24, written: 24, rejected: 0, reconciles: true });
    expect(await sameBytes(featureTsvPath(d, 'train'), featureTsvPath(clean, 'train'))).toBe(true);
    expect((await stat(featureTsvPath(d, 'train'))).size).toBeGreaterThan(0);
    expect((await readdir(join(d, 'image_features'))).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  }

  it('after SIGKILL mid-segment', async () => {
    const d = join(root, 'killed');
    const r = await interrupt(d, 'SIGKILL');
    expect(r.signal).toBe('SIGKILL');
    expect(r.partial).toBeGreaterThanOrEqual(3);
    expect(r.partial).toBeLessThan(24);
    await resumeAndCompare(d, r.partial);
  }, 180_000);

  it('after Ctrl-C: the workers stop, exit 130 with a line saying how to resume', async () => {
    const d = join(root, 'sigint');
    const r = await interrupt(d, 'SIGINT');
    expect(r.code).toBe(130);
    expect(r.stderr).toMatch(/^region-features: interrupted; .* rerun the same command to resume$/m);
    // The workers are terminated mid-image, not waited for.
    expect(r.stopSeconds).toBeLessThan(10);
    expect(r.partial).toBeLessThan(24);
    await resumeAndCompare(d, r.partial);
  }, 180_000);
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
    const n = run('extract', '--work-dir', join(root, 'base'), '--workers', '0');
    expect(n.status).toBe(2);
    expect(n.stderr).toMatch(/--workers 0: expected an integer >= 1/);
  }, 60_000);

  it('exits 1 naming the file when there is no segments.json', () => {
    const r = run('extract', '--work-dir', join(root, 'nowhere'), '--quiet');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/segments\.json/);
  }, 60_000);

  it('merge refuses --shard and --num-shards (flag or config file) with one line, and honours --config', async () => {
    const d = await copyBase('merge-cli');
    await extract(opts(d));
    for (const [args, flag] of [
      [['--shard', '0/2'], /^region-features: --shard 0\/2: merge is not sharded/],
      [['--num-shards', '2'], /^region-features: --num-shards 2: merge is not sharded/],
    ] as const) {
      const r = run('merge', '--work-dir', d, ...args);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(flag);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
    const sharded = join(d, 'sharded.json');
    await writeFile(sharded, JSON.stringify({ shard: '1/2' }));
    const s = run('merge', '--work-dir', d, '--config', sharded);
    expect(s.status).toBe(2);
    expect(s.stderr).toMatch(/--shard 1\/2: merge is not sharded/);
    const cfg = join(d, 'merge.json');
    await writeFile(cfg, JSON.stringify({ workDir: d, json: true }));
    const m = run('merge', '--config', cfg);
    expect(m.status, m.stderr).toBe(0);
    expect(JSON.parse(m.stdout)).toMatchObject({ stage: 'region-features', in: 11, written: 5, rejected: 4, merged: true, reconciles: true });
  }, 120_000);

  it('a preset K3M cannot read says so on stderr, also with --quiet', async () => {
    const d = await copyBase('warn-cli');
    const r = run('extract', '--work-dir', d, '--backend', 'wasm', '--preset', 'small-c4', '--quiet');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^WARNING: preset small-c4 writes 256-d features over 101 classes: the original K3M loader .* cannot read these rows/m);
  }, 120_000);
});

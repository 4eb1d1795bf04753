/**
 * Interop with Python: the TSV K3M's script writes (fixture made once with Debian python by
 * tools/golden/make_region_golden.py) reads back exactly; ours reads in K3M's loader (strip
 * `[2:-1]`, base64, float32; run live, skipped without /usr/bin/python3 + numpy). Also the
 * unpickler over protocols 2-5 and convert-weights' checks.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeFeatureRow, featureTsvPath, readFeatureTsv, type FeatureRow } from '../src/codecs/feature-tsv.ts';
import { readDetectron2Pickle } from '../src/codecs/detectron2-pickle.ts';
import { readSafetensors } from '@k3m-kit/core';
import { ANCHOR_BUFFER, optionalParamShapes, paramShapes, verifyParams, WeightsMismatchError } from '../src/model/params.ts';
import { PRESETS } from '../src/model/presets.ts';
import { GOLDEN_DIR, makeTinyWorkDir, REPO_ROOT } from '../src/testing.ts';
import { convertWeights } from '../src/weights.ts';

const PY = '/usr/bin/python3';
const hasNumpy = spawnSync(PY, ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0;
if (!hasNumpy) console.warn(`SKIP K3M loader interop: ${PY} cannot import numpy (apt-get install python3-numpy)`);
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rf-interop-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Expected {
  featureDim: number;
  numClasses: number;
  rows: { imageId: string; imageW: number; imageH: number; numBoxes: number; boxes: number[]; features: number[]; clsProb: number[] }[];
}

describe('feature TSV and Python', () => {
  it("reads the TSV K3M's Python writer produces (str of bytes, CRLF line ends)", async () => {
    const want = JSON.parse(await readFile(join(GOLDEN_DIR, 'k3m-python.json'), 'utf8')) as Expected;
    const text = await readFile(join(GOLDEN_DIR, 'k3m-python.tsv'), 'utf8');
    expect(text).toContain("\tb'");
    expect(text).toContain('\r\n');
    const got = [];
    for await (const l of readFeatureTsv(join(GOLDEN_DIR, 'k3m-python.tsv'), want)) {
      if (!l.ok) throw new Error(l.detail);
      expect(l.form).toBe('k3m');
      got.push(l.row);
    }
    expect(got.map((r) => ({ ...r, boxes: Array.from(r.boxes), features: Array.from(r.features), clsProb: Array.from(r.clsProb) }))).toEqual(want.rows);
  });

  it.skipIf(!hasNumpy)("our K3M-form TSV reads in K3M's loader (strip [2:-1], base64, float32)", async () => {
    const rows: FeatureRow[] = [0, 2].map((n, i) => ({
      imageId: `${i}_s1`,
      imageW: 33 + i,
      imageH: 44,
      numBoxes: n,
      boxes: Float32Array.from({ length: n * 4 }, (_, j) => j * 1.5),
      features: Float32Array.from({ length: n * 8 }, (_, j) => j / 7),
      clsProb: Float32Array.from({ length: n * 5 }, () => 0.2),
    }));
    const path = join(dir, 'ours.tsv');
    await writeFile(path, rows.map((r) => encodeFeatureRow(r) + '\n').join(''));
    const py = spawnSync(PY, [join(REPO_ROOT, 'tools/golden/read_k3m_tsv.py'), path, '8', '5'], { encoding: 'utf8' });
    expect(py.status, py.stderr).toBe(0);
    const got = py.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(got).toHaveLength(2);
    rows.forEach((r, i) => {
      expect(got[i]).toMatchObject({ imageId: r.imageId, imageW: r.imageW, imageH: r.imageH, numBoxes: r.numBoxes, boxes: Array.from(r.boxes) });
      expect(got[i].featureSum).toBeCloseTo(r.features.reduce((a, b) => a + b, 0), 4);
      expect(got[i].clsProbSum).toBeCloseTo(r.clsProb.reduce((a, b) => a + b, 0), 4);
    });
  });
});

describe("the default pipeline's TSV in K3M's loader", () => {
  const BIN = join(REPO_ROOT, 'packages/region-features/bin/region-features.js');
  const extractCli = (d: string, ...args: string[]) => spawnSync(process.execPath, [BIN, 'extract', '--work-dir', d, '--backend', 'wasm', '--quiet', '--json', ...args], { encoding: 'utf8' });
  // What K3M's loader fixes: np.zeros((region_len, 2048)) and a 1601-wide image_target.
  const k3mLoader = (tsv: string) => spawnSync(PY, [join(REPO_ROOT, 'tools/golden/read_k3m_tsv.py'), tsv, '2048', '1601'], { encoding: 'utf8' });
  const items = [{ image: { w: 64, h: 48 } }, { image: 'missing' as const }, { image: { w: 50, h: 70 } }];

  it.skipIf(!hasNumpy)('extract with its defaults writes 2048-d features and 1601 class probabilities that the original loader reads', async () => {
    const d = join(dir, 'default-preset');
    await makeTinyWorkDir(d, [{ split: 'train', items }]);
    const r = extractCli(d);
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report).toMatchObject({ preset: 'small-c4-2048', featureDim: 2048, numClasses: 1601, k3mReadable: true, written: 2, reconciles: true });
    expect(report.widthWarning).toBeUndefined();
    expect(r.stderr).not.toMatch(/WARNING/);
    const py = k3mLoader(featureTsvPath(d, 'train'));
    expect(py.status, py.stderr).toBe(0);
    const got = py.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(got.map((x) => [x.imageId, x.imageW, x.imageH])).toEqual([
      ['0_s0', 64, 48],
      ['2_s0', 50, 70],
    ]);
    for (const x of got) {
      expect(x.numBoxes).toBeGreaterThan(0);
      expect(x.clsProbSum).toBeCloseTo(x.numBoxes, 3);
      expect(Number.isFinite(x.featureSum)).toBe(true);
    }
  }, 120_000);

  it.skipIf(!hasNumpy)('the small-c4 preset (256-d, 101 classes) is what the loader cannot read, as its warning says', async () => {
    const d = join(dir, 'small-preset');
    await makeTinyWorkDir(d, [{ split: 'train', items }]);
    const r = extractCli(d, '--preset', 'small-c4');
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ k3mReadable: false, widthWarning: expect.stringMatching(/cannot read these rows/) });
    const py = k3mLoader(featureTsvPath(d, 'train'));
    expect(py.status).not.toBe(0);
    expect(py.stderr).toMatch(/cannot reshape array/);
  }, 120_000);
});

describe('detectron2 pickles', () => {
  for (const p of [2, 3, 4, 5]) {
    it(`protocol ${p}: float32, float64 and int64 arrays with shapes`, async () => {
      const m = await readDetectron2Pickle(join(GOLDEN_DIR, `pickle-protocol-${p}.pkl`));
      expect([...m.keys()]).toEqual(['a', 'b', 'c']);
      expect(m.get('a')).toEqual({ shape: [2, 3], data: Float32Array.from([0, 1, 2, 3, 4, 5]) });
      expect(m.get('b')).toEqual({ shape: [2], data: Float32Array.from([1.5, -2.25]) });
      expect(m.get('c')).toEqual({ shape: [1, 2], data: Float32Array.from([3, -4]) });
    });
  }

  it.skipIf(!hasNumpy)('names a Caffe2 / Detectron 1 blobs pickle as such, with the file (CLI exit 2)', async () => {
    const pkl = join(dir, 'caffe2.pkl');
    const g = spawnSync(PY, [join(REPO_ROOT, 'tools/checkpoint/make_bua_checkpoint.py'), '--caffe2-blobs', '--out', pkl], { encoding: 'utf8' });
    expect(g.status, g.stderr).toBe(0);
    await expect(readDetectron2Pickle(pkl)).rejects.toThrow(/caffe2\.pkl: is a Caffe2 \/ Detectron 1 weight file/);
    const r = spawnSync(process.execPath, [join(REPO_ROOT, 'packages/region-features/bin/region-features.js'), 'convert-weights', pkl], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/caffe2\.pkl: is a Caffe2 \/ Detectron 1 weight file \(\{'blobs'/);
  }, 30_000);

  it('names a torch.save zip archive as such', async () => {
    await writeFile(join(dir, 'model.pth'), Buffer.from('PK\x03\x04 rest of a zip'));
    await expect(readDetectron2Pickle(join(dir, 'model.pth'))).rejects.toThrow(/model\.pth: is a zip archive \(torch\.save/);
  });

  it('refuses a non-pickle and a pickle with foreign globals, saying why', async () => {
    await writeFile(join(dir, 'bad.pkl'), 'hello');
    await expect(readDetectron2Pickle(join(dir, 'bad.pkl'))).rejects.toThrow(/pickle/);
    // protocol 0: os.system global
    await writeFile(join(dir, 'evil.pkl'), "cos\nsystem\n(S'true'\ntR.");
    await expect(readDetectron2Pickle(join(dir, 'evil.pkl'))).rejects.toThrow(/os\.system/);
  });
});

describe('convert-weights', () => {
  it('converts the reference pickle to safetensors with every name and shape of the preset', async () => {
    const out = join(dir, 'w.safetensors');
    const r = await convertWeights(join(GOLDEN_DIR, 'small-c4-random.pkl'), out, 'small-c4');
    const want = paramShapes(PRESETS['small-c4']);
    expect(r.tensors).toBe(want.size);
    const st = await readSafetensors(out);
    expect(st.metadata.preset).toBe('small-c4');
    for (const [n, s] of want) expect(st.tensors.get(n)?.shape, n).toEqual(s);
  });

  it('lists missing and mis-shaped names with the file in one error, and the unknown ones beside them', () => {
    const got = new Map([...paramShapes(PRESETS['small-c4'])].map(([n, shape]) => [n, { shape }]));
    got.delete('backbone.res3.0.conv2.weight');
    got.set('roi_heads.mask_head.predictor.weight', { shape: [80, 256, 1, 1] });
    got.set('roi_heads.box_predictor.cls_score.bias', { shape: [1601] });
    got.set('backbone.res2.0.conv1.norm.num_batches_tracked', { shape: [] });
    let err: Error | undefined;
    try {
      verifyParams(PRESETS['small-c4'], got, 'small-c4', 'x.pkl');
    } catch (e) {
      err = e as Error;
    }
    expect(err).toBeInstanceOf(WeightsMismatchError);
    expect(err!.message).toMatch(/^x\.pkl: weights do not fit preset small-c4/);
    expect(err!.message).toMatch(/missing \(1\): backbone\.res3\.0\.conv2\.weight\n/);
    expect(err!.message).toMatch(/cls_score\.bias: \[1601\] where small-c4 needs \[101\]/);
    expect(err!.message).toMatch(/not used \(1\): roi_heads\.mask_head\.predictor\.weight$/);
  });

  it('unknown names alone are reported, not fatal; the anchor buffer and a whole attribute head are kept', () => {
    const c = PRESETS['small-c4'];
    const opt = optionalParamShapes(c);
    const got = new Map([...paramShapes(c), ...opt.anchors, ...opt.attributes].map(([n, shape]) => [n, { shape }]));
    got.set('roi_heads.mask_head.predictor.weight', { shape: [80, 256, 1, 1] });
    const fit = verifyParams(c, got, 'small-c4');
    expect(fit).toMatchObject({ anchors: true, attributes: true, unused: ['roi_heads.mask_head.predictor.weight'] });
    expect(fit.names).toContain(ANCHOR_BUFFER);
    expect(fit.names).toContain('roi_heads.box_predictor.attr_score.weight');
    expect(fit.names).not.toContain('roi_heads.mask_head.predictor.weight');
  });

  it('a partial attribute head is an error naming the parts that are missing', () => {
    const c = PRESETS['small-c4'];
    const got = new Map([...paramShapes(c)].map(([n, shape]) => [n, { shape }]));
    got.set('roi_heads.box_predictor.attr_score.weight', { shape: [401, 64] });
    expect(() => verifyParams(c, got, 'small-c4', 'y.pkl')).toThrow(/^y\.pkl: weights do not fit preset small-c4:\n  missing \(4\): roi_heads\.box_predictor\.cls_embedding\.weight, /);
  });

  it('the CLI exits 2 when the pickle does not fit the preset', () => {
    const r = spawnSync(
      process.execPath,
      [join(REPO_ROOT, 'packages/region-features/bin/region-features.js'), 'convert-weights', join(GOLDEN_DIR, 'small-c4-random.pkl'), '--out', join(dir, 'x.safetensors')],
      { encoding: 'utf8' },
    );
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^region-features: \S*small-c4-random\.pkl: weights do not fit preset bua-r101-c4/);
    expect(r.stderr).toMatch(/missing \(\d+\)/);
  }, 30_000);
});

/**
 * The TF.js detector against the independent PyTorch/torchvision reference
 * (tools/golden/make_region_golden.py): the reference's random weights go through
 * convert-weights, and every intermediate must agree on the CPU back ends.
 *
 * Tolerances: res4, proposals, pooled features and probabilities within 1e-4 of the
 * reference's largest magnitude (float32 convolutions summed in another order, batch norm
 * folded here and applied after the convolution there); selected ids exactly, in order;
 * final boxes within 1e-3 px.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectBackend, setWasmKernels } from '@k3m-kit/core/backend';
import { extractImage } from '../src/extract-image.ts';
import { bestForeground, selectAdaptive } from '../src/model/boxes.ts';
import { Detector } from '../src/model/detector.ts';
import { PRESETS } from '../src/model/presets.ts';
import { readSafetensors, toFloat32, toInt32 } from '@k3m-kit/core';
import { loadRegionGolden, PYTHON, relMaxDiff, REPO_ROOT, type RegionGolden } from '../src/testing.ts';
import { convertWeights, readWeights } from '../src/weights.ts';

const TOL = 1e-4;
let golden: RegionGolden;
let dir: string;
let weightsPath: string;

beforeAll(async () => {
  golden = await loadRegionGolden();
  dir = await mkdtemp(join(tmpdir(), 'rf-golden-'));
  weightsPath = join(dir, 'small.safetensors');
  await convertWeights(golden.pkl, weightsPath, 'small-c4');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('golden fixture', () => {
  it('was made with the small-c4 topology', () => {
    const p = PRESETS['small-c4'] as unknown as Record<string, unknown>;
    for (const [k, v] of Object.entries(golden.config)) expect(p[k], k).toEqual(v);
  });
});

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`detector vs PyTorch reference on ${backend}`, () => {
    let det: Detector;
    beforeAll(async () => {
      await selectBackend(backend);
      // wasm's own kernels: the machine's OpenBLAS sums in an order that depends on the CPU
      // (AVX-512 kernels on an AMD EPYC), and boxes whose scores tie in float noise then swap
      // places in the selections; XNNPACK's bits give the reference's selections exactly.
      if (backend === 'wasm') setWasmKernels('xnnpack');
      det = new Detector(PRESETS['small-c4'], await readWeights(weightsPath, 'small-c4'));
    });
    afterAll(() => det?.dispose());

    for (const i of [0, 1, 2]) {
      it(`image ${i}: res4, proposals, features, probabilities, selections, final boxes`, async () => {
        const g = golden.images[i]!;
        const input = det.preprocess(g.rgb, g.h, g.w);
        const map = det.backbone(input);
        expect(map.shape.slice(1)).toEqual(g.res4Shape);
        expect(relMaxDiff((await map.data()) as Float32Array, g.res4)).toBeLessThan(TOL);
        map.dispose();

        const out = await det.run(input, 'k3m');
        expect(out.proposals.length).toBe(g.proposals.length);
        expect(relMaxDiff(out.proposals, g.proposals)).toBeLessThan(TOL);
        expect(relMaxDiff(out.features, g.features)).toBeLessThan(TOL);
        expect(relMaxDiff(out.probs, g.probs)).toBeLessThan(TOL);
        expect(out.keep).toEqual(Array.from(g.k3mKeep));

        expect(selectAdaptive(out.probs, det.config.numClasses, out.proposals).keep).toEqual(Array.from(g.adaptiveKeep));
        input.dispose();
        // The cpu back end is slow: the end-to-end row (same numbers again) is checked on wasm only.
        if (backend === 'cpu') return;
        const row = await extractImage(det, 'x', { rgb: g.rgb, h: g.h, w: g.w, rawH: g.rawH, rawW: g.rawW }, 'k3m');
        if ('reason' in row) throw new Error(row.reason);
        expect(row.numBoxes).toBe(g.k3mKeep.length);
        const maxDiff = Math.max(...Array.from(row.boxes, (v, j) => Math.abs(v - g.k3mBoxes[j]!)));
        expect(maxDiff).toBeLessThan(1e-3);
        expect([row.imageW, row.imageH]).toEqual([g.rawW, g.rawH]);
      }, 60_000);
    }
  });
}

describe('small-c4-2048 (res5 at stride 2, 2048-d, 1601 classes) vs the PyTorch reference, live', () => {
  const missing = spawnSync(PYTHON, ['-c', 'import torch, torchvision'], { encoding: 'utf8' }).status === 0 ? undefined : `${PYTHON} with torch + torchvision is not available (apt-get install python3-torch python3-torchvision)`;
  if (missing) console.warn(`skipping the live small-c4-2048 reference check: ${missing}`);
  it.skipIf(!!missing)('res4, proposals, features, probabilities, selection and boxes agree on wasm', async () => {
    const out = join(dir, 'small-2048');
    const py = spawnSync(PYTHON, [join(REPO_ROOT, 'tools/golden/torch_detector_check.py'), JSON.stringify(PRESETS['small-c4-2048']), out], { encoding: 'utf8' });
    expect(py.status, py.stderr).toBe(0);
    await convertWeights(join(out, 'weights.pkl'), join(out, 'w.safetensors'), 'small-c4-2048');
    const st = await readSafetensors(join(out, 'golden.safetensors'));
    const t = (n: string) => st.tensors.get(n)!;
    const rgb = t('rgb');
    const [h, w] = rgb.shape as [number, number];
    await selectBackend('wasm');
    setWasmKernels('xnnpack'); // as above: selections exactly the reference's
    const det = new Detector(PRESETS['small-c4-2048'], await readWeights(join(out, 'w.safetensors'), 'small-c4-2048'));
    try {
      const input = det.preprocess(new Uint8Array(rgb.bytes), h, w);
      const res = await det.run(input, 'k3m');
      input.dispose();
      expect(relMaxDiff(res.res4.data, toFloat32(t('res4')))).toBeLessThan(TOL);
      expect(relMaxDiff(res.proposals, toFloat32(t('proposals')))).toBeLessThan(TOL);
      expect(res.features.length / res.proposals.length).toBe(2048 / 4);
      expect(relMaxDiff(res.features, toFloat32(t('features')))).toBeLessThan(TOL);
      expect(relMaxDiff(res.probs, toFloat32(t('probs')))).toBeLessThan(TOL);
      // Over 1601 classes the best scores lie close together: the same boxes are kept, and
      // where two trade places their reference scores are tied within the tolerance.
      const want = Array.from(toInt32(t('k3m_keep')));
      expect([...res.keep].sort((a, b) => a - b)).toEqual([...want].sort((a, b) => a - b));
      const ref = bestForeground(toFloat32(t('probs')), 1601).scores;
      res.keep.forEach((id, i) => expect(Math.abs(ref[id]! - ref[want[i]!]!)).toBeLessThan(TOL * ref[want[0]!]!));
      const row = await extractImage(det, 'x', { rgb: new Uint8Array(rgb.bytes), h, w, rawH: Number(st.metadata.rawH), rawW: Number(st.metadata.rawW) }, 'k3m');
      if ('reason' in row) throw new Error(row.reason);
      const boxes = toFloat32(t('k3m_boxes'));
      const refBox = new Map(want.map((id, i) => [id, boxes.subarray(i * 4, i * 4 + 4)]));
      res.keep.forEach((id, i) => {
        for (let j = 0; j < 4; j++) expect(Math.abs(row.boxes[i * 4 + j]! - refBox.get(id)![j]!)).toBeLessThan(1e-3);
      });
    } finally {
      det.dispose();
    }
  }, 120_000);
});

/**
 * @file Benchmark of region-features' detector (not a test): images/s for `small-c4` (random
 * weights) on wasm and cpu, and for `bua-r101-c4` on wasm with a checkpoint of the real
 * `faster_rcnn_from_caffe.pkl` layout (tools/checkpoint/make_bua_checkpoint.py, random values,
 * through convert-weights; the anchor buffer included), next to the PyTorch reference
 * (tools/golden/bench_torch.py: same topology, the same pickle, the same resized images, Debian
 * torch on this CPU), with the ratios: wall-clock images/s and CPU seconds per image (both
 * sides single-threaded, so CPU time is what a shared machine distorts least; the load average
 * is printed with the table). Model time only (images pre-decoded), plus the whole
 * extract path (sharp decode + resize overlapped with the model) for small-c4. Without
 * /usr/bin/python3 + numpy or keys.tsv, bua-r101-c4 runs on random weights of the real size.
 *
 *   npx tsx tools/bench/extract.ts
 *   BENCH_IMAGES=16 BENCH_BUA_IMAGES=1 BENCH_BUA_SIZE=800 BENCH_TORCH_THREADS=1 npx tsx tools/bench/extract.ts
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs';
import { describeBackend, selectBackend } from '@k3m-kit/core/backend';
import {
  convertWeights,
  decodeImage,
  Detector,
  extractImage,
  IMAGE_SIZES,
  PRESETS,
  randomParams,
  readWeights,
  type DecodedImage,
  type Params,
  type PresetName,
} from '@k3m-kit/region-features';
import { buaGeneratorMissing, makeBuaCheckpoint, REPO_ROOT } from '@k3m-kit/region-features/testing';

const N_SMALL = Number(process.env.BENCH_IMAGES ?? 16);
const N_BUA = Number(process.env.BENCH_BUA_IMAGES ?? 1);
const BUA_SIZE = (process.env.BENCH_BUA_SIZE ?? '800') as keyof typeof IMAGE_SIZES;
const TORCH_THREADS = Number(process.env.BENCH_TORCH_THREADS ?? 1);
const BACKENDS = (process.env.BENCH_BACKENDS ?? 'wasm,cpu').split(',');

const dir = await mkdtemp(join(tmpdir(), 'bench-extract-'));

/** Sample-like JPEGs (160-320 px sides), as the embedded sample has. */
async function makeJpegs(n: number): Promise<string[]> {
  const paths: string[] = [];
  for (let i = 0; i < n; i++) {
    const w = 160 + ((i * 37) % 161);
    const h = 160 + ((i * 71) % 161);
    const raw = Buffer.alloc(w * h * 3);
    for (let p = 0; p < raw.length; p++) raw[p] = (p * (i + 3) + ((p / (w * 3)) | 0) * 7) % 251;
    const path = join(dir, `${i}.jpg`);
    await sharp(raw, { raw: { width: w, height: h, channels: 3 } }).jpeg().toFile(path);
    paths.push(path);
  }
  return paths;
}

async function decodeAll(paths: string[], minSize: number, maxSize: number): Promise<DecodedImage[]> {
  return Promise.all(paths.map((p) => decodeImage(p, minSize, maxSize)));
}

/** bua-r101-c4's weights: the real layout generated and converted, else random of the real size. */
async function buaWeights(): Promise<{ params: Params; pkl?: string; label: string }> {
  const why = buaGeneratorMissing();
  if (why) {
    console.error(`real-layout checkpoint unavailable (${why}): bua-r101-c4 on random weights of the real size`);
    return { params: randomParams(PRESETS['bua-r101-c4'], 0), label: 'random' };
  }
  const pkl = join(dir, 'faster_rcnn_from_caffe.pkl');
  makeBuaCheckpoint(pkl);
  await convertWeights(pkl, join(dir, 'bua.safetensors'), 'bua-r101-c4');
  return { params: await readWeights(join(dir, 'bua.safetensors'), 'bua-r101-c4'), pkl, label: 'real layout' };
}

/** Wall-clock images/s and CPU seconds per image (the CPU figure is what a shared machine distorts least). */
interface Rate {
  perSecond: number;
  cpuPerImage: number;
}

async function tfjsRate(preset: PresetName, imgs: DecodedImage[], params?: Params): Promise<Rate> {
  const det = new Detector(PRESETS[preset], params ?? randomParams(PRESETS[preset], 0));
  await extractImage(det, 'warm', imgs[0]!, 'k3m');
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  for (const img of imgs) await extractImage(det, 'x', img, 'k3m');
  const cpu = process.cpuUsage(c0);
  const s = (performance.now() - t0) / 1000;
  det.dispose();
  return { perSecond: imgs.length / s, cpuPerImage: (cpu.user + cpu.system) / 1e6 / imgs.length };
}

/** The whole path per image: sharp decode + resize (4 ahead) overlapped with the model. */
async function pipelineRate(paths: string[]): Promise<number> {
  const c = PRESETS['small-c4'];
  const det = new Detector(c, randomParams(c, 0));
  await extractImage(det, 'warm', await decodeImage(paths[0]!, c.minSize, c.maxSize), 'k3m');
  const t0 = performance.now();
  const queue: Promise<DecodedImage>[] = [];
  for (const p of paths) {
    queue.push(decodeImage(p, c.minSize, c.maxSize));
    if (queue.length > 4) await extractImage(det, 'x', await queue.shift()!, 'k3m');
  }
  while (queue.length) await extractImage(det, 'x', await queue.shift()!, 'k3m');
  det.dispose();
  return paths.length / ((performance.now() - t0) / 1000);
}

async function torchRate(preset: PresetName, imgs: DecodedImage[], tag: string, pkl?: string): Promise<Rate | string> {
  const list = imgs.map((img, i) => ({ path: join(dir, `${tag}-${i}.rgb`), h: img.h, w: img.w }));
  {
    await Promise.all(imgs.map((img, i) => writeFile(list[i]!.path, img.rgb)));
    await writeFile(join(dir, `${tag}.json`), JSON.stringify(list));
    const args = [join(REPO_ROOT, 'tools/golden/bench_torch.py'), JSON.stringify(PRESETS[preset]), join(dir, `${tag}.json`), String(TORCH_THREADS)];
    const r = spawnSync('/usr/bin/python3', pkl ? [...args, pkl] : args, { encoding: 'utf8' });
    if (r.status !== 0) return `torch reference unavailable (${(r.stderr || r.error?.message || '').trim().split('\n').pop()})`;
    const out = JSON.parse(r.stdout) as { imagesPerSecond: number; cpuSecondsPerImage: number };
    return { perSecond: out.imagesPerSecond, cpuPerImage: out.cpuSecondsPerImage };
  }
}

const fmt = (x: number) => (x >= 10 ? x.toFixed(1) : x >= 1 ? x.toFixed(2) : x.toFixed(3));
const rows: string[][] = [];
const jpegs = await makeJpegs(N_SMALL);
const small = PRESETS['small-c4'];
const smallImgs = await decodeAll(jpegs, small.minSize, small.maxSize);
const bua = IMAGE_SIZES[BUA_SIZE];
const buaImgs = await decodeAll(jpegs.slice(0, N_BUA), bua.minSize, bua.maxSize);

const torchSmall = await torchRate('small-c4', smallImgs, 'small');
const bw = N_BUA > 0 ? await buaWeights() : undefined;
const torchBua = bw ? await torchRate('bua-r101-c4', buaImgs, 'bua', bw.pkl) : undefined;
/** One table row: ours and the reference, wall and CPU, and both ratios (above 1: tfjs faster). */
const row = (label: string, b: string, x: Rate, t: Rate | string | undefined): string[] => {
  if (typeof t !== 'object') return [label, b, fmt(x.perSecond), fmt(x.cpuPerImage), t ?? '', '', '', ''];
  return [label, b, fmt(x.perSecond), fmt(x.cpuPerImage), fmt(t.perSecond), fmt(t.cpuPerImage), `${fmt(x.perSecond / t.perSecond)}x`, `${fmt(t.cpuPerImage / x.cpuPerImage)}x`];
};
for (const b of BACKENDS) {
  const choice = await selectBackend(b);
  console.error(describeBackend(choice));
  const s = await tfjsRate('small-c4', b === 'cpu' ? smallImgs.slice(0, Math.min(4, N_SMALL)) : smallImgs);
  rows.push(row(`small-c4 ${small.minSize}/${small.maxSize} model`, b, s, torchSmall));
  if (b === 'wasm') {
    rows.push([`small-c4 ${small.minSize}/${small.maxSize} decode+model`, b, fmt(await pipelineRate(jpegs)), '', '', '', '', '']);
    if (bw) rows.push(row(`bua-r101-c4 ${bua.minSize}/${bua.maxSize} model, ${bw.label} weights`, b, await tfjsRate('bua-r101-c4', buaImgs, bw.params), torchBua));
  }
  tf.disposeVariables();
}
await rm(dir, { recursive: true, force: true });

const head = ['case', 'backend', 'tfjs img/s', 'tfjs CPU s/img', `torch img/s (${TORCH_THREADS} thr)`, 'torch CPU s/img', 'tfjs/torch wall', 'tfjs/torch CPU'];
const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ');
console.log(`images: small-c4 ${N_SMALL}, bua-r101-c4 ${N_BUA} (sample-like JPEGs 160-320 px); torch threads ${TORCH_THREADS}; load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}; peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`);
console.log(line(head));
for (const r of rows) console.log(line(r));

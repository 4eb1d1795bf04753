/**
 * @file Benchmark of region-features' detector (not a test): images/s of our detector worker
 * threads (one wasm back end each, as `extract --workers N` runs them) next to the PyTorch
 * reference (tools/golden/bench_torch.py: the same topology, the same resized images, Debian
 * torch on this CPU) given the same number of threads, with the ratio and each side's peak RSS.
 *
 * Cases: the default preset `small-c4-2048` (random weights: torch draws its own, of the same
 * shapes) and `bua-r101-c4` on a checkpoint of the real `faster_rcnn_from_caffe.pkl` layout
 * (tools/checkpoint/make_bua_checkpoint.py, random values, through convert-weights; torch loads
 * the same pickle as detectron2 does). Model time only: images are decoded and resized first and
 * both sides read the same pixels. Every tfjs figure runs in a process of its own, so its peak
 * RSS is its own; warm-up is one image per worker (torch: one image).
 *
 *   npx tsx tools/bench/extract.ts
 *   BENCH_THREADS=1,2 BENCH_IMAGES=8 BENCH_BUA_IMAGES=4 BENCH_BUA_SIZE=800 npx tsx tools/bench/extract.ts
 *
 * BENCH_THREADS: thread counts to compare (our workers = torch's threads; default 1 and the
 * cores); BENCH_CASES: `small`, `bua` or both (default).
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import {
  convertWeights,
  decodeImage,
  DetectorPool,
  IMAGE_SIZES,
  PRESETS,
  randomParams,
  readWeights,
  selectBackend,
  shareParams,
  type PresetName,
} from '@k3m-kit/region-features';
import { buaGeneratorMissing, makeBuaCheckpoint, REPO_ROOT } from '@k3m-kit/region-features/testing';

/** One side's figure. */
interface Rate {
  perSecond: number;
  cpuPerImage: number;
  peakRssMB: number;
}

/** What a tfjs case process is told (argv[3], JSON). */
interface CaseSpec {
  preset: PresetName;
  /** Converted weights; random init when absent. */
  weights?: string;
  /** Raw RGB files with their sizes (written once, read by both sides). */
  images: { path: string; h: number; w: number }[];
  workers: number;
}

/** The back-end line of the detector workers (it names the kernels their convolutions run on). */
let workerBackend = '';

/** A tfjs case in this process: N workers over the images, after one warm-up image per worker. */
async function runCase(spec: CaseSpec): Promise<Rate> {
  const backend = await selectBackend('wasm');
  const cfg = PRESETS[spec.preset];
  const params = spec.weights ? await readWeights(spec.weights, spec.preset) : randomParams(cfg, 0);
  const pool = await DetectorPool.start({ workers: spec.workers, config: cfg, backend: backend.name, params: shareParams(params), rule: 'k3m', form: 'k3m', attributes: false });
  params.clear();
  const imgs = await Promise.all(spec.images.map(async (i) => ({ rgb: new Uint8Array(await readFile(i.path)), h: i.h, w: i.w, rawH: i.h, rawW: i.w })));
  const runAll = (list: typeof imgs) => Promise.all(list.map((img, k) => pool.run(`${k}_s0`, img)));
  workerBackend = pool.backend;
  try {
    await runAll(Array.from({ length: spec.workers }, (_, k) => imgs[k % imgs.length]!));
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    await runAll(imgs);
    const cpu = process.cpuUsage(c0);
    const s = (performance.now() - t0) / 1000;
    return { perSecond: imgs.length / s, cpuPerImage: (cpu.user + cpu.system) / 1e6 / imgs.length, peakRssMB: process.resourceUsage().maxRSS / 1024 };
  } finally {
    await pool.close();
  }
}

if (process.argv[2] === '--case') {
  process.stdout.write(JSON.stringify(await runCase(JSON.parse(process.argv[3]!) as CaseSpec)) + '\n');
  process.exit(0);
}

const THREADS = (process.env.BENCH_THREADS ?? [...new Set([1, availableParallelism()])].join(',')).split(',').map(Number);
const N_SMALL = Number(process.env.BENCH_IMAGES ?? 8);
const N_BUA = Number(process.env.BENCH_BUA_IMAGES ?? 2 * Math.max(...THREADS));
const BUA_SIZE = (process.env.BENCH_BUA_SIZE ?? '800') as keyof typeof IMAGE_SIZES;
const CASES = (process.env.BENCH_CASES ?? 'small,bua').split(',');

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

/** Decodes and resizes once; both sides read these raw RGB files. Writes the list torch reads. */
async function resizedImages(tag: string, jpegs: string[], minSize: number, maxSize: number): Promise<{ list: CaseSpec['images']; listFile: string }> {
  const list: CaseSpec['images'] = [];
  for (const [i, p] of jpegs.entries()) {
    const img = await decodeImage(p, minSize, maxSize);
    const path = join(dir, `${tag}-${i}.rgb`);
    await writeFile(path, img.rgb);
    list.push({ path, h: img.h, w: img.w });
  }
  const listFile = join(dir, `${tag}.json`);
  await writeFile(listFile, JSON.stringify(list));
  return { list, listFile };
}

function tfjsRate(spec: CaseSpec): Rate | string {
  const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--case', JSON.stringify(spec)], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) return `tfjs case failed (${(r.stderr || '').trim().split('\n').slice(-1)[0]?.slice(0, 200)})`;
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Rate;
}

function torchRate(preset: PresetName, listFile: string, threads: number, pkl?: string): Rate | string {
  const args = [join(REPO_ROOT, 'tools/golden/bench_torch.py'), JSON.stringify(PRESETS[preset]), listFile, String(threads)];
  const r = spawnSync('/usr/bin/python3', pkl ? [...args, pkl] : args, { encoding: 'utf8' });
  if (r.status !== 0) return `torch reference unavailable (${(r.stderr || r.error?.message || '').trim().split('\n').pop()})`;
  const out = JSON.parse(r.stdout) as { imagesPerSecond: number; cpuSecondsPerImage: number; peakRssMB: number };
  return { perSecond: out.imagesPerSecond, cpuPerImage: out.cpuSecondsPerImage, peakRssMB: out.peakRssMB };
}

/** bua-r101-c4's weights: the real layout generated and converted, else random of the real size. */
async function buaWeights(): Promise<{ safetensors?: string; pkl?: string; label: string }> {
  const why = buaGeneratorMissing();
  if (why) {
    console.error(`real-layout checkpoint unavailable (${why}): bua-r101-c4 on random weights of the real size`);
    return { label: 'random' };
  }
  const pkl = join(dir, 'faster_rcnn_from_caffe.pkl');
  makeBuaCheckpoint(pkl);
  const safetensors = join(dir, 'bua.safetensors');
  await convertWeights(pkl, safetensors, 'bua-r101-c4');
  return { safetensors, pkl, label: 'real layout' };
}

const fmt = (x: number) => (x >= 10 ? x.toFixed(1) : x >= 1 ? x.toFixed(2) : x.toFixed(3));
const rows: string[][] = [];
const cell = (r: Rate | string) => (typeof r === 'string' ? [r, '', ''] : [fmt(r.perSecond), fmt(r.cpuPerImage), r.peakRssMB.toFixed(0)]);
const jpegs = await makeJpegs(Math.max(N_SMALL, N_BUA));
const loads: string[] = [];

async function bench(label: string, preset: PresetName, n: number, size: { minSize: number; maxSize: number }, w: { safetensors?: string; pkl?: string }): Promise<void> {
  const { list, listFile } = await resizedImages(preset, jpegs.slice(0, n), size.minSize, size.maxSize);
  for (const threads of THREADS) {
    loads.push(loadavg()[0]!.toFixed(1));
    const ours = tfjsRate({ preset, weights: w.safetensors, images: list, workers: threads });
    const torch = torchRate(preset, listFile, threads, w.pkl);
    const ratio = typeof ours === 'object' && typeof torch === 'object' ? `${fmt(ours.perSecond / torch.perSecond)}x` : '';
    rows.push([label, String(threads), ...cell(ours), ...cell(torch), ratio]);
    console.error(`${label}, ${threads} thread(s): done (load ${loadavg()[0]!.toFixed(1)})`);
  }
}

if (CASES.includes('small')) {
  const c = PRESETS['small-c4-2048'];
  await bench(`small-c4-2048 ${c.minSize}/${c.maxSize}, ${N_SMALL} img`, 'small-c4-2048', N_SMALL, c, {});
}
if (CASES.includes('bua') && N_BUA > 0) {
  const bw = await buaWeights();
  const size = IMAGE_SIZES[BUA_SIZE];
  await bench(`bua-r101-c4 ${size.minSize}/${size.maxSize}, ${bw.label} weights, ${N_BUA} img`, 'bua-r101-c4', N_BUA, size, bw);
}
await rm(dir, { recursive: true, force: true });

const head = ['case', 'threads', 'tfjs img/s', 'tfjs CPU s/img', 'tfjs peak RSS MB', 'torch img/s', 'torch CPU s/img', 'torch peak RSS MB', 'tfjs/torch'];
const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ');
console.log(`tfjs: wasm, one detector worker per thread (${workerBackend}); torch: torch.set_num_threads(threads); 1-min load average at each start ${loads.join(', ')}, at the end ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
console.log(line(head));
for (const r of rows) console.log(line(r));

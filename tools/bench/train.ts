/**
 * @file Benchmark of k3m-model's training step (not a test). One full train step (forward,
 * backward, AdamW), batch 8, the reference geometry (title 36, knowledge 48, 36 regions + the
 * global row, 2048-d features, 1601 classes, the bert-base-chinese vocabulary of 21128), on the
 * rows of the embedded sample preprocessed by our data path with random well-formed region
 * features (as the reference's harness does; each step's batch made just before it, outside the
 * timed region, as the reference's generator makes it), through the trainer's own path: the data-parallel
 * worker pool and the optimizer step. For k3m-small and k3m-medium (105 M parameters; also
 * k3m-base, the paper's 461.7 M, with BENCH_CONFIGS=k3m-base) it prints, in one run:
 *
 *   ours on wasm with 1 worker and with one worker per core (median of 5 steps after 2 warm-up
 *   steps, each configuration in its own process, with that process's peak RSS), ours in one
 *   process on the threaded SIMD wasm build with a thread per core (./wasm-threads.ts), the original
 *   PyTorch K3M on the same config (`../shared/reference/k3m-torch/bench.sh`, run here when
 *   Debian's torch is installed, said so when not), and the ratio ours / original.
 *
 *   npx tsx tools/bench/train.ts                       # both configs
 *   BENCH_CONFIGS=k3m-small npx tsx tools/bench/train.ts
 *   BENCH_REF_ARGS=--no-guard npx tsx tools/bench/train.ts   # extra args for bench.sh
 *   BENCH_WARMUP=1 BENCH_STEPS=2 npx tsx tools/bench/train.ts   # fewer steps (ours and the original's)
 *
 * Numbers are only comparable on an otherwise idle machine: the load average is printed first.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rng } from '@k3m-kit/core';
import { blasStatus } from '@k3m-kit/core/backend';
import * as tf from '@tensorflow/tfjs';
import {
  AdamState,
  adamwUpdate,
  countParameters,
  forward,
  frugalGradients,
  ItemStreams,
  K3mParams,
  registerKernels,
  type ModelConfig,
  batches,
  checkTrainingMemory,
  wasmKernels,
  createSharedTraining,
  DEFAULT_FIXES,
  DEFAULT_LOSS_WEIGHTS,
  K3mTokenizer,
  modelConfig,
  OptimizerStep,
  ParamArena,
  sharedFloats,
  WorkerPool,
  type Batch,
  type PresetName,
} from '@k3m-kit/k3m-model';
import type { K3mRecord } from '@k3m-kit/lmdb-writer';
import { decodeRawTsvFile } from '@k3m-kit/raw-ingest';
import { startThreadedWasm } from './wasm-threads.ts';

const REPO_ROOT = resolve(fileURLToPath(import.meta.url), '../../..');
const SHARED = process.env.K3M_SHARED ?? resolve(REPO_ROOT, '../shared');
const REFERENCE = join(SHARED, 'reference/k3m-torch');
const SAMPLE = join(SHARED, 'data/k3m-sample/train.tsv');
const VOCAB = join(REFERENCE, 'k3m/bert-base-chinese/vocab.txt');
const BATCH = 8;
const WARMUP = Number(process.env.BENCH_WARMUP ?? 2);
const STEPS = Number(process.env.BENCH_STEPS ?? 5);
const GB = 2 ** 30;

/** Our step on `workers` workers: median seconds and this process's peak RSS (run in a child). */
interface OursResult {
  preset: string;
  workers: number;
  /** wasm threads of one back end (the threaded build), else 1. */
  threads: number;
  /** Micro-batches per step (batch 8 in parts when a share would not fit a wasm heap). */
  accumulate: number;
  parameters: number;
  median_s: number;
  steps_s: number[];
  peak_rss_gb: number;
  inputs_per_item: { title_labels: number; pv_labels: number; pv_pairs: number; region_labels: number };
}

/** Region outputs like the reference harness's: ReLU-like features, softmax rows, valid boxes in 800x800. */
function randomImage(rng: Rng, id: string, caption: string, pv: string): K3mRecord {
  const n = 36;
  const features = Float32Array.from({ length: n * 2048 }, () => Math.max(rng.normal(), 0));
  const clsProb = new Float32Array(n * 1601);
  for (let r = 0; r < n; r++) {
    let sum = 0;
    for (let k = 0; k < 1601; k++) sum += clsProb[r * 1601 + k] = Math.exp(rng.normal());
    for (let k = 0; k < 1601; k++) clsProb[r * 1601 + k]! /= sum;
  }
  const boxes = new Float32Array(n * 4);
  for (let r = 0; r < n; r++) {
    const x1 = rng.float(0, 768);
    const y1 = rng.float(0, 768);
    boxes.set([x1, y1, x1 + rng.float(16, 799 - x1), y1 + rng.float(16, 799 - y1)], r * 4);
  }
  return { features, clsProb, boxes, numBoxes: n, imageH: 800, imageW: 800, imageId: id, caption, pv, category: '', featureDim: 2048, numClasses: 1601 };
}

/**
 * `n` batches of `size` of the sample's rows through our data path (train mode: masking as in
 * training), made one at a time as the steps ask for them: the original's harness also makes
 * each batch (from a generator) just before its step, outside the timed region, so neither
 * side's peak RSS holds the inputs of every step at once.
 */
class SampleBatches {
  /** Per-item input counts over the batches made so far. */
  readonly counts = { items: 0, titleLabels: 0, pvLabels: 0, pvPairs: 0, regionLabels: 0 };
  private readonly it: AsyncIterator<Batch>;

  constructor(tokenizer: K3mTokenizer, n: number, size: number) {
    async function* records(): AsyncGenerator<K3mRecord> {
      const rng = new Rng(43);
      let made = 0;
      for await (const r of decodeRawTsvFile(SAMPLE)) {
        if (!r.ok) continue;
        yield randomImage(rng, r.itemId, r.title, r.pairs.map(([p, v]) => `${p}:${v}`).join(';'));
        if (++made >= n * size) return;
      }
    }
    this.it = batches(records(), { tokenizer, batchSize: size, mode: 'train', seed: 42, featureDim: 2048, numClasses: 1601, shuffleBuffer: 0 })[Symbol.asyncIterator]();
  }

  /** The next batch; then a full garbage collection (node --expose-gc), so that the timed step that follows does not pay for this one's garbage. */
  async next(): Promise<Batch> {
    const r = await this.it.next();
    if (r.done) throw new Error('the sample has too few rows for the steps asked for');
    const b = r.value;
    const count = (xs: Int32Array, p: (x: number) => boolean) => xs.reduce((a, x) => a + (p(x) ? 1 : 0), 0);
    this.counts.items += b.shape.batchSize;
    this.counts.titleLabels += count(b.lmLabelIds, (l) => l >= 0);
    this.counts.pvLabels += count(b.lmLabelIdsPv, (l) => l >= 0);
    this.counts.pvPairs += Array.from({ length: b.shape.batchSize * b.shape.maxPairs }, (_, j) => b.indexP[2 * j]).filter((x) => x !== 0).length;
    this.counts.regionLabels += count(b.imageLabel, (l) => l === 1);
    (globalThis as { gc?: () => void }).gc?.();
    return b;
  }
}

/** The step in this process on the threaded wasm build (forward, backward, the same flat AdamW). */
async function threadedSteps(config: ModelConfig, data: SampleBatches, steps: number, threads: number, accumulate: number): Promise<number[]> {
  const running = await startThreadedWasm(threads);
  if (running !== threads) throw new Error(`the threaded wasm build runs ${running} threads, not ${threads}`);
  registerKernels();
  const arena = ParamArena.init(config, 42);
  const adam = AdamState.create(arena.layout);
  const model = K3mParams.fromValues(config, (n) => arena.view(n));
  const vars = arena.layout.slots.map((s) => model.get(s.name));
  const grads = new Float32Array(arena.layout.total);
  const times: number[] = [];
  for (let i = 0; i < steps; i++) {
    const micro: Batch[] = [];
    for (let k = 0; k < accumulate; k++) micro.push(await data.next());
    const t0 = performance.now();
    const has = new Uint8Array(arena.layout.slots.length);
    grads.fill(0);
    for (let k = 0; k < accumulate; k++) {
      const b = micro[k]!;
      const { value, grads: g } = frugalGradients(() => forward(model, b, { fusionMode: 1, training: true, rng: new ItemStreams(i * accumulate + k, 0, b.shape.batchSize) }).loss! as tf.Scalar, vars);
      value.dispose();
      for (const s of arena.layout.slots) {
        const t = g[s.index];
        if (!t) continue;
        const d = t.dataSync() as Float32Array;
        for (let j = 0; j < d.length; j++) grads[s.offset + j]! += d[j]!;
        t.dispose();
        has[s.index] = 1;
      }
    }
    arena.layout.slots.forEach((s) => has[s.index] && adam.steps[s.index]!++);
    adamwUpdate(arena.data, adam, { grads, scale: 1 / accumulate, hasGrad: has, lr: 1e-4 });
    tf.tidy(() => arena.layout.slots.forEach((s) => has[s.index] && vars[s.index]!.assign(tf.tensor(arena.view(s.name), s.shape))));
    if (i >= WARMUP) times.push((performance.now() - t0) / 1000);
  }
  return times;
}

/** The step through the trainer's worker pool and optimizer step. */
async function poolSteps(config: ModelConfig, data: SampleBatches, steps: number, workers: number, accumulate: number): Promise<number[]> {
  const params = ParamArena.init(config, 42, sharedFloats);
  const pool = await WorkerPool.start(createSharedTraining(params, AdamState.create(params.layout, sharedFloats), workers), {
    backend: 'wasm',
    fusionMode: 1,
    fixes: DEFAULT_FIXES,
    weights: DEFAULT_LOSS_WEIGHTS,
  });
  const step = new OptimizerStep(pool, new Rng(42), { accumulate, lr: 1e-4, warmup: 0.1, totalSteps: 100 });
  const times: number[] = [];
  try {
    for (let i = 0; i < steps; i++) {
      const micro: Batch[] = [];
      for (let k = 0; k < accumulate; k++) micro.push(await data.next());
      const t0 = performance.now();
      for (const b of micro) await step.microBatch(b, i);
      if (i >= WARMUP) times.push((performance.now() - t0) / 1000);
    }
  } finally {
    await pool.close();
  }
  return times;
}

async function runOurs(preset: PresetName, workers: number, threads: number): Promise<OursResult> {
  const tokenizer = await K3mTokenizer.fromVocabFile(VOCAB);
  const config = modelConfig(preset, { vocab_size: tokenizer.vocabSize, v_feature_size: 2048, v_target_size: 1601 });
  // Batch 8 per optimizer step; in micro-batches when a whole share would not fit a wasm heap (as --accumulate does).
  const fits = (micro: number) => {
    try {
      // The threaded build runs wasm's own kernels (XNNPACK), the workers those of this machine (BLAS when it has one).
      checkTrainingMemory(config, { name: `--preset ${preset}`, backend: 'wasm', batchSize: micro, workers, kernels: threads > 1 ? 'xnnpack' : wasmKernels() });
      return true;
    } catch {
      return false;
    }
  };
  let accumulate = 1;
  while (accumulate < BATCH && !fits(BATCH / accumulate)) accumulate *= 2;
  const data = new SampleBatches(tokenizer, (WARMUP + STEPS) * accumulate, BATCH / accumulate);
  const times = threads > 1 ? await threadedSteps(config, data, WARMUP + STEPS, threads, accumulate) : await poolSteps(config, data, WARMUP + STEPS, workers, accumulate);
  const c = data.counts;
  return {
    preset,
    workers,
    threads,
    accumulate,
    parameters: countParameters(config),
    median_s: [...times].sort((a, b) => a - b)[Math.floor(times.length / 2)]!,
    steps_s: times.map((t) => Number(t.toFixed(3))),
    peak_rss_gb: process.resourceUsage().maxRSS / 2 ** 20,
    inputs_per_item: {
      title_labels: c.titleLabels / c.items,
      pv_labels: c.pvLabels / c.items,
      pv_pairs: c.pvPairs / c.items,
      region_labels: c.regionLabels / c.items,
    },
  };
}

/** Our measurement in a fresh process (its own peak RSS); undefined with the reason when it fails. */
function ours(preset: string, workers: number, threads = 1): OursResult | string {
  // Started as the CLI starts (node-entry.js), not under this process's tsx: its peak RSS is a user's.
  const entry = fileURLToPath(new URL('./node-entry.js', import.meta.url));
  // --expose-gc: each step's batch is made, then collected after, outside the timed region (SampleBatches).
  const r = spawnSync(process.execPath, ['--expose-gc', entry, fileURLToPath(import.meta.url), '--one', preset, String(workers), String(threads)], { encoding: 'utf8', maxBuffer: 1 << 24 });
  const line = r.stdout.trim().split('\n').at(-1) ?? '';
  if (r.status !== 0 || !line.startsWith('{')) return `failed (exit ${r.status}): ${(r.stderr || r.stdout).split('\n').find((l) => /Error/.test(l))?.trim() ?? 'no error line'}`;
  return JSON.parse(line) as OursResult;
}

/** The original's config file for a preset: the harness's k3m-small.json with the preset's sizes. */
function referenceConfig(preset: PresetName, dir: string): string {
  const base = JSON.parse(readFileSync(join(REFERENCE, 'k3m-small.json'), 'utf8')) as Record<string, unknown>;
  const c = modelConfig(preset, { vocab_size: 21128 });
  const keys = ['hidden_size', 'num_hidden_layers', 'num_attention_heads', 'intermediate_size', 'v_hidden_size', 'v_num_hidden_layers', 'v_num_attention_heads', 'v_intermediate_size', 'v_biattention_id', 't_biattention_id', 'bi_hidden_size', 'bi_num_attention_heads'] as const;
  const file = join(dir, `${preset}.json`);
  writeFileSync(file, JSON.stringify({ ...base, ...Object.fromEntries(keys.map((k) => [k, c[k]])), bi_intermediate_size: c.intermediate_size }, null, 2));
  return file;
}

interface ReferenceResult {
  median_s: number;
  step_s: number[];
  peak_rss_gb: number;
  params_unique: number;
  input_means_per_item: Record<string, number>;
}

function reference(preset: PresetName, dir: string): ReferenceResult | string {
  const out = join(dir, `${preset}-ref.json`);
  const extra = (process.env.BENCH_REF_ARGS ?? '').split(' ').filter(Boolean);
  // The same warm-up and measured steps as ours (BENCH_WARMUP, BENCH_STEPS).
  const steps = ['--warmup', String(WARMUP), '--steps', String(STEPS)];
  const r = spawnSync(join(REFERENCE, 'bench.sh'), [referenceConfig(preset, dir), String(BATCH), ...steps, '--out', out, ...extra], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0 || !existsSync(out)) return `failed (exit ${r.status}): ${r.stderr.trim().split('\n').at(-1)}`;
  return JSON.parse(readFileSync(out, 'utf8')) as ReferenceResult;
}

function torchMissing(): string | undefined {
  if (!existsSync(join(REFERENCE, 'bench.sh'))) return `no reference harness at ${REFERENCE}`;
  const r = spawnSync('/usr/bin/python3', ['-c', 'import torch, numpy, tqdm, sklearn, psutil, yaml, boto3'], { encoding: 'utf8' });
  if (r.status !== 0) return `Debian's torch (or a module the original imports) is not installed: apt-get install -y python3-torch python3-numpy python3-lmdb python3-msgpack python3-msgpack-numpy python3-tqdm python3-sklearn python3-psutil python3-yaml python3-boto3 python3-botocore libopenblas0-openmp (${r.stderr.trim().split('\n').at(-1)})`;
  return undefined;
}

async function main(): Promise<void> {
  if (process.argv[2] === '--one') {
    console.log(JSON.stringify(await runOurs(process.argv[3] as PresetName, Number(process.argv[4]), Number(process.argv[5] ?? 1))));
    process.exit(0); // the threaded build's pthreads keep the event loop alive
  }
  const configs = (process.env.BENCH_CONFIGS ?? 'k3m-small,k3m-medium').split(',') as PresetName[];
  const cores = availableParallelism();
  const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');
  console.log(`k3m-model train step, batch ${BATCH} (title 36, knowledge 48, 36 regions + global), median of ${STEPS} steps after ${WARMUP} warm-up, ours and the original alike; ${cores} cores; load average ${load()}`);
  const blas = blasStatus();
  console.log(`ours: wasm, matmuls and convolutions on ${blas.blas ? blas.blas.name : `XNNPACK (${blas.reason})`} in the worker columns, XNNPACK in the threaded one`);
  if (loadavg()[0]! > 2.5) console.log('note: the machine is busy (1-minute load above 2.5); these numbers are indicative only');
  if (!existsSync(SAMPLE) || !existsSync(VOCAB)) {
    console.log(`skipped: the sample rows and the bert-base-chinese vocabulary come from ${SHARED} (set K3M_SHARED), which is missing`);
    return;
  }
  const missing = torchMissing();
  if (missing) console.log(`reference: not run, ${missing}`);
  const dir = mkdtempSync(join(tmpdir(), 'bench-train-'));
  const fmt = (r: OursResult | ReferenceResult | string | undefined) =>
    r === undefined ? '-' : typeof r === 'string' ? r : `${r.median_s.toFixed(3)} s (${r.peak_rss_gb.toFixed(2)} GB)${'accumulate' in r && r.accumulate > 1 ? `, ${r.accumulate} x ${BATCH / r.accumulate}` : ''}`;
  const rows: string[][] = [];
  try {
    for (const preset of configs) {
      const one = ours(preset, 1);
      const many = cores > 1 ? ours(preset, cores) : undefined;
      const threaded = cores > 1 ? ours(preset, 1, cores) : undefined;
      const ref = missing ? undefined : reference(preset, dir);
      const best = [one, many].filter((r): r is OursResult => typeof r === 'object').sort((a, b) => a.median_s - b.median_s)[0];
      const ratio = best && typeof ref === 'object' ? `${(best.median_s / ref.median_s).toFixed(2)}x (${best.workers} worker${best.workers > 1 ? 's' : ''}), RSS ${(best.peak_rss_gb / ref.peak_rss_gb).toFixed(2)}x` : '-';
      const params = best ? `${(best.parameters / 1e6).toFixed(1)} M` : '-';
      rows.push([preset, params, fmt(one), fmt(many), fmt(threaded), fmt(ref), ratio]);
      for (const r of [one, many, threaded, ref]) if (r && typeof r === 'object') console.log(`  ${preset} ${'workers' in r ? `ours, ${r.workers} worker(s) x ${r.threads} thread(s)` : 'original'}: ${JSON.stringify('workers' in r ? { steps_s: r.steps_s, inputs_per_item: r.inputs_per_item } : { steps_s: r.step_s, inputs_per_item: r.input_means_per_item })}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const head = ['config', 'parameters', 'ours, 1 worker (peak RSS)', `ours, ${cores} workers (peak RSS)`, `ours, threaded wasm x${cores} (peak RSS)`, 'original, PyTorch, 2 threads (peak RSS)', 'ours / original (best of the first two)'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  for (const r of [head, ...rows]) console.log(r.map((c, i) => c.padEnd(widths[i]!)).join('  '));
  console.log(`goal: k3m-small at most 1.0x, k3m-medium (105 M) at most 1.5x; load average at the end ${load()}`);
}

await main();

/**
 * Data-parallel training (src/train/worker-pool.ts): N worker threads train the same parameters
 * as one (dropout, Gumbel noise, the structure loss's cross-item negatives and gradient
 * accumulation included), an interrupted multi-worker run resumes to the same loss sequence, and
 * a failing worker surfaces as an error with its cause while the others are released instead of
 * waiting forever.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { readSafetensors, toFloat32 } from '@k3m-kit/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeRecord } from '../src/data/testing.ts';
import { modelConfig } from '../src/model/config.ts';
import { DEFAULT_FIXES, DEFAULT_LOSS_WEIGHTS } from '../src/model/k3m.ts';
import { ParamArena, sharedFloats } from '../src/model/param-arena.ts';
import { AdamState } from '../src/train/adamw.ts';
import { pretrainConfig, workersOf } from '../src/train/config.ts';
import { pretrain } from '../src/train/pretrain.ts';
import { arraySource } from '../src/train/records.ts';
import { SharedBarrier, WorkerAborted } from '../src/train/shared-barrier.ts';
import { createSharedTraining, gradSlot } from '../src/train/shared-training.ts';
import { WorkerPool } from '../src/train/worker-pool.ts';
import { syntheticBatch, TINY_MODEL } from '../src/testing.ts';

const WORDS = ['红色', '蓝色', '棉', '麻', '连衣裙', '衬衫', '夏季', '新款', '女装', '男装'];
const PROPS = ['颜色', '材质', '风格', '尺码'];
const records = (n: number, seed: number) =>
  Array.from({ length: n }, (_, i) => {
    const w = (k: number) => WORDS[(i * 7 + k * 3 + seed) % WORDS.length]!;
    return makeRecord({ imageId: `p${seed}_${i}`, caption: `${w(0)}${w(1)}${w(2)}`, pv: PROPS.map((p, k) => `${p}:${w(k + 3)}`).join(';'), numBoxes: 1 + (i % 4), featureDim: 16, numClasses: 12, seed: i });
  });


/**
 * Biases added to every score of one softmax (attention keys; the structure attention's single
 * score bias): a shift the softmax cancels, so their gradient is zero in exact arithmetic.
 */
const SHIFT_INVARIANT = /(\.key\d?\.bias|^struc_w2\.bias)$/;

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'k3m-parallel-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

const run = (over: Partial<Parameters<typeof pretrainConfig>[0]>, signal?: AbortSignal, onStep?: (m: { step: number }) => void) =>
  pretrain(pretrainConfig({ workDir: work, model: TINY_MODEL, batchSize: 5, lr: 2e-3, warmup: 0, seed: 11, shuffleBuffer: 8, checkpointEvery: 2, ...over }), {
    train: arraySource(records(20, 0)),
    validation: arraySource(records(6, 1)),
    backend: 'wasm',
    signal,
    onStep,
  });

const weights = async (runDir: string) => (await readSafetensors(join(runDir, 'model.safetensors'))).tensors;
const stepLosses = async (dir: string) =>
  (await readFile(join(dir, 'metrics.jsonl'), 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l))
    .filter((m) => m.type === 'step')
    .map((m) => [m.step, m.loss, m.losses]);

describe('data-parallel training', () => {
  it('2 and 3 workers train the same parameters as 1 worker (3 steps; dropout, Gumbel, accumulation), within 1e-5 of each tensor', async () => {
    // batch 5 over 2 workers: shares of 2 and 3 items; over 3: 1, 2, 2. accumulate 2: 6 micro-batches.
    // At the default learning rate: AdamW normalises every element, so a rounding difference in a
    // near-zero gradient element moves that weight by up to ~lr either way.
    const lr = pretrainConfig({ workDir: work }).lr;
    const steps = 3;
    const one = await run({ name: 'w1', workers: 1, steps, accumulate: 2, lr });
    const sd1 = await weights(one.runDir);
    const init = ParamArena.init(one.config, 11);
    const movedFromInit = (name: string, x: Float32Array) => Math.max(...Array.from(x, (v, i) => Math.abs(v - init.view(name)[i]!)));
    for (const workers of [2, 3]) {
      const r = await run({ name: `w${workers}`, workers, steps, accumulate: 2, lr });
      expect(r.steps).toBe(steps);
      const sd = await weights(r.runDir);
      let worst = 0;
      let learnt = 0;
      for (const s of init.layout.slots) {
        const a = toFloat32(sd1.get(s.name)!);
        const b = toFloat32(sd.get(s.name)!);
        if (SHIFT_INVARIANT.test(s.name)) {
          // Zero gradient in exact arithmetic: both runs move only by rounding noise (under 1% of
          // the ~lr per step a learnt parameter moves), so there is nothing to agree on.
          expect(movedFromInit(s.name, a), s.name).toBeLessThan(1e-2 * lr * steps);
          expect(movedFromInit(s.name, b), s.name).toBeLessThan(1e-2 * lr * steps);
          continue;
        }
        let scale = 0;
        let diff = 0;
        for (let i = 0; i < a.length; i++) {
          scale = Math.max(scale, Math.abs(a[i]!));
          diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
        }
        worst = Math.max(worst, diff === 0 ? 0 : diff / scale);
        if (movedFromInit(s.name, a) > lr) learnt++;
      }
      // most tensors learnt something (otherwise agreeing would prove nothing)
      expect(learnt).toBeGreaterThan(init.layout.slots.length / 2);
      expect(worst, `${workers} workers: worst relative difference of a tensor`).toBeLessThan(1e-5);
      const l1 = one.stepMetrics.map((m) => m.loss);
      r.stepMetrics.forEach((m, i) => expect(Math.abs(m.loss - l1[i]!) / Math.abs(l1[i]!)).toBeLessThan(1e-5));
    }
  });

  it('an interrupted 2-worker run resumed from its checkpoint logs the same losses as an uninterrupted one', async () => {
    const full = await run({ name: 'full2', workers: 2, steps: 6 });
    const want = await stepLosses(full.runDir);
    expect(want).toHaveLength(6);
    const ctl = new AbortController();
    const cut = await run({ name: 'cut2', workers: 2, steps: 6 }, ctl.signal, (m) => m.step === 3 && ctl.abort());
    expect(cut.aborted).toBe(true);
    const resumed = await run({ name: 'cut2', workers: 2, steps: 6, resume: true });
    expect(resumed.resumedFrom).toBe(2);
    expect(await stepLosses(resumed.runDir)).toEqual(want);
  });

  it('--sam-stale-triples reaches across items: one worker, or a usage error when more are asked for', () => {
    expect(workersOf({ samStaleTriples: true }, 'wasm')).toBe(1);
    expect(() => workersOf({ samStaleTriples: true, workers: 2 }, 'wasm')).toThrow(/--workers 2: --sam-stale-triples/);
    expect(workersOf({ samStaleTriples: false, workers: 3 }, 'wasm')).toBe(3);
    expect(workersOf({ samStaleTriples: false }, 'tensorflow')).toBe(1);
  });

  it('a worker that fails mid-step surfaces as an error naming it and its cause; the worker waiting for it is released', async () => {
    const config = modelConfig('k3m-small', { ...TINY_MODEL, vocab_size: 300, v_feature_size: 16, v_target_size: 12 });
    const params = ParamArena.init(config, 1, sharedFloats);
    const shared = createSharedTraining(params, AdamState.create(params.layout, sharedFloats), 2);
    const pool = await WorkerPool.start(shared, { backend: 'wasm', fusionMode: 1, fixes: DEFAULT_FIXES, weights: DEFAULT_LOSS_WEIGHTS });
    const batch = syntheticBatch(3, { batchSize: 4, vocabSize: 300, featureDim: 16, numClasses: 12 });
    // One value short: the first share (items 0-1) cannot be shaped, the second is whole and
    // goes on to the structure loss's exchange, where it waits for the first.
    batch.imageFeat = batch.imageFeat.slice(0, -1);
    const t0 = performance.now();
    const err = await pool.micro(batch, 1, true).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(/^training worker 0: .*tensor should have \d+ values but has \d+/);
    expect(performance.now() - t0).toBeLessThan(30_000);
    // the pool is closed: later requests fail at once with the same cause
    await expect(pool.apply(0.1, 1)).rejects.toThrow(/training worker 0/);
  });

  it('a share with nothing labelled (title and image losses only) adds a zero gradient instead of failing the step', async () => {
    const config = modelConfig('k3m-small', { ...TINY_MODEL, vocab_size: 300, v_feature_size: 16, v_target_size: 12 });
    const weights = { t: 1, v: 1, pv: 0, tri: 0 };
    const batch = syntheticBatch(4, { batchSize: 4, vocabSize: 300, featureDim: 16, numClasses: 12 });
    // items 0-1 (the first worker's share) have no masked title token and no masked region
    const { titleLen: Lt, regions: R } = batch.shape;
    batch.lmLabelIds.fill(-1, 0, 2 * Lt);
    batch.imageLabel.fill(0, 0, 2 * R);
    expect(batch.lmLabelIds.slice(2 * Lt).some((l) => l >= 0) || batch.imageLabel.slice(2 * R).some((l) => l === 1)).toBe(true);
    const gradsOf = async (workers: number) => {
      const params = ParamArena.init(config, 1, sharedFloats);
      const shared = createSharedTraining(params, AdamState.create(params.layout, sharedFloats), workers);
      const pool = await WorkerPool.start(shared, { backend: 'wasm', fusionMode: 1, fixes: DEFAULT_FIXES, weights });
      try {
        const r = await pool.micro(batch, 1, true);
        const sum = new Float64Array(params.layout.total);
        for (let w = 0; w < workers; w++) gradSlot(shared, w).forEach((g, i) => (sum[i]! += g));
        return { loss: r.loss, grad: sum };
      } finally {
        await pool.close();
      }
    };
    const one = await gradsOf(1);
    const two = await gradsOf(2);
    expect(Number.isFinite(two.loss) && two.loss > 0).toBe(true);
    expect(Math.abs(two.loss - one.loss) / one.loss).toBeLessThan(1e-6);
    // the same gradient: the labelled share's, the other adding zero
    let scale = 0;
    let diff = 0;
    one.grad.forEach((g, i) => {
      scale = Math.max(scale, Math.abs(g));
      diff = Math.max(diff, Math.abs(g - two.grad[i]!));
    });
    expect(scale).toBeGreaterThan(0);
    expect(diff / scale).toBeLessThan(1e-5);
  });

  it('a worker that cannot start fails the start with its cause', async () => {
    const config = modelConfig('k3m-small', { ...TINY_MODEL, vocab_size: 50, v_feature_size: 16, v_target_size: 12 });
    const params = ParamArena.init(config, 1, sharedFloats);
    const shared = createSharedTraining(params, AdamState.create(params.layout, sharedFloats), 2);
    await expect(WorkerPool.start(shared, { backend: 'no-such-backend', fusionMode: 1, fixes: DEFAULT_FIXES, weights: DEFAULT_LOSS_WEIGHTS })).rejects.toThrow(
      /^training worker \d: --backend no-such-backend: must be one of/,
    );
  });

  it('a barrier wait ends with WorkerAborted when another thread sets the abort word', () => {
    const words = new Int32Array(new SharedArrayBuffer(8));
    const abort = new Int32Array(new SharedArrayBuffer(4));
    // another thread aborts after 100 ms; this one would otherwise wait for a second party forever
    const w = new Worker('const { workerData: a } = require("node:worker_threads"); setTimeout(() => { Atomics.store(a, 0, 1); }, 100);', { eval: true, workerData: abort });
    const t0 = performance.now();
    expect(() => new SharedBarrier(words, abort).wait(2)).toThrow(WorkerAborted);
    expect(performance.now() - t0).toBeLessThan(5000);
    void w.terminate();
  });
});

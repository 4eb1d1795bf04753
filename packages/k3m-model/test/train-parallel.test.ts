/**
 * Data-parallel training (src/train/worker-pool.ts): with the shares fixed, N worker threads train
 * the same parameters as one, bit for bit (dropout, Gumbel noise, the structure loss's negatives
 * across shares and gradient accumulation included); shares give the whole batch's loss and gradient; an
 * interrupted multi-worker run resumes to the same loss sequence; and a failing worker surfaces as
 * an error with its cause while the others are released instead of waiting forever.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { readSafetensors, toFloat32 } from '@k3m-kit/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeRecord } from '../src/data/testing.ts';
import { modelConfig } from '../src/model/config.ts';
import { DEFAULT_FIXES, DEFAULT_LOSS_WEIGHTS } from '../src/model/k3m.ts';
import { ParamArena, sharedFloats } from '../src/model/param-arena.ts';
import { AdamState } from '../src/train/adamw.ts';
import { pretrainConfig, sharesOf, workersOf } from '../src/train/config.ts';
import { pretrain } from '../src/train/pretrain.ts';
import { arraySource } from '../src/train/records.ts';
import { SharedBarrier, WorkerAborted } from '../src/train/shared-barrier.ts';
import { createSharedTraining, stepGradient } from '../src/train/shared-training.ts';
import { shareRange, sharesIn, sliceBatch } from '../src/train/batch-share.ts';
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
  pretrain(pretrainConfig({ workDir: work, model: TINY_MODEL, batchSize: 5, lr: 2e-3, warmup: 0, seed: 11, shuffleBuffer: 8, checkpointEvery: 2, fusionMode: 1, ...over }), {
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
  it('2 and 3 workers train the same parameters as 1 worker (3 shares, 3 steps; dropout, Gumbel, accumulation): bit for bit, so within 1e-5 of each tensor', async () => {
    // batch 5 in 3 shares of 1, 2 and 2 items: 1 worker runs all 3 in one pass and adds them up
    // in 3 rounds, 2 workers in 2 rounds (the second on one), 3 workers in 1. accumulate 2: 6
    // micro-batches.
    const lr = pretrainConfig({ workDir: work }).lr;
    const steps = 3;
    const one = await run({ name: 'w1', workers: 1, shares: 3, steps, accumulate: 2, lr });
    expect(one.shares).toBe(3);
    const sd1 = await weights(one.runDir);
    const init = ParamArena.init(one.config, 11);
    const movedFromInit = (name: string, x: Float32Array) => Math.max(...Array.from(x, (v, i) => Math.abs(v - init.view(name)[i]!)));
    for (const workers of [2, 3]) {
      const r = await run({ name: `w${workers}`, workers, shares: 3, steps, accumulate: 2, lr });
      expect(r.steps).toBe(steps);
      expect(r.workers).toBe(workers);
      const sd = await weights(r.runDir);
      let worst = 0;
      let learnt = 0;
      let identical = 0;
      for (const s of init.layout.slots) {
        const a = toFloat32(sd1.get(s.name)!);
        const b = toFloat32(sd.get(s.name)!);
        if (SHIFT_INVARIANT.test(s.name)) {
          // Zero gradient in exact arithmetic: both runs move only by rounding noise (under 1% of
          // the ~lr per step a learnt parameter moves).
          expect(movedFromInit(s.name, a), s.name).toBeLessThan(1e-2 * lr * steps);
          expect(movedFromInit(s.name, b), s.name).toBeLessThan(1e-2 * lr * steps);
        }
        let scale = 0;
        let diff = 0;
        for (let i = 0; i < a.length; i++) {
          scale = Math.max(scale, Math.abs(a[i]!));
          diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
        }
        worst = Math.max(worst, diff === 0 ? 0 : diff / scale);
        if (Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0) identical++;
        if (movedFromInit(s.name, a) > lr) learnt++;
      }
      // most tensors learnt something (otherwise agreeing would prove nothing)
      expect(learnt).toBeGreaterThan(init.layout.slots.length / 2);
      expect(worst, `${workers} workers: worst relative difference of a tensor`).toBeLessThan(1e-5);
      // every float operation is the same on any number of workers (worker-pool.ts)
      expect(identical, `${workers} workers: tensors identical to 1 worker's`).toBe(init.layout.slots.length);
      expect(r.stepMetrics.map((m) => m.loss)).toEqual(one.stepMetrics.map((m) => m.loss));
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

  it('--shares fixes the arithmetic; workers default to one per share and never exceed them; --sam-stale-triples takes batches whole', () => {
    expect(sharesOf({ samStaleTriples: false }, 'wasm')).toBe(availableParallelism());
    expect(sharesOf({ samStaleTriples: false }, 'tensorflow')).toBe(1);
    expect(workersOf({ samStaleTriples: false }, 'wasm')).toBe(availableParallelism());
    expect(workersOf({ samStaleTriples: false, shares: 3 }, 'wasm')).toBe(3);
    expect(workersOf({ samStaleTriples: false, shares: 3, workers: 1 }, 'wasm')).toBe(1);
    expect(workersOf({ samStaleTriples: false, shares: 2, workers: 5 }, 'wasm')).toBe(2);
    expect(workersOf({ samStaleTriples: false, shares: 2 }, 'tensorflow')).toBe(1);
    expect(workersOf({ samStaleTriples: true }, 'wasm')).toBe(1);
    expect(sharesOf({ samStaleTriples: true }, 'wasm')).toBe(1);
    expect(() => workersOf({ samStaleTriples: true, workers: 2 }, 'wasm')).toThrow(/--workers 2: --sam-stale-triples/);
    expect(() => sharesOf({ samStaleTriples: true, shares: 2 }, 'wasm')).toThrow(/--shares 2: --sam-stale-triples/);
  });

  it('a share is a copy of its items; a batch whose arrays do not fit its shape is refused, naming the field', () => {
    expect([0, 1, 2].map((k) => shareRange(5, 3, k))).toEqual([
      [0, 1],
      [1, 3],
      [3, 5],
    ]);
    expect(sharesIn(2, 4)).toBe(2);
    const b = syntheticBatch(5, { batchSize: 5, vocabSize: 300, featureDim: 16, numClasses: 12 });
    const { titleLen: Lt, regions: R, featureDim: F } = b.shape;
    const s = sliceBatch(b, 3, 5);
    expect(s.shape.batchSize).toBe(2);
    expect(s.imageIds).toEqual(b.imageIds.slice(3));
    expect(Array.from(s.inputIds)).toEqual(Array.from(b.inputIds.subarray(3 * Lt)));
    expect(Array.from(s.imageFeat)).toEqual(Array.from(b.imageFeat.subarray(3 * (R + 1) * F)));
    s.inputIds[0] = -7;
    expect(b.inputIds[3 * Lt]).not.toBe(-7);
    b.imageFeat = b.imageFeat.slice(0, -1);
    expect(() => sliceBatch(b, 0, 2)).toThrow(/batch field imageFeat has \d+ values, not 5 items of \d+/);
  });

  it('a micro-batch in shares on one worker has the loss and gradient of the whole batch, the structure loss across shares included (5 items in 3 shares; 2 items, 4 asked for: 2 shares of one item)', async () => {
    const config = modelConfig('k3m-small', { ...TINY_MODEL, vocab_size: 300, v_feature_size: 16, v_target_size: 12 });
    for (const [items, shares] of [
      [5, 3],
      [2, 4],
    ] as const) {
      const batch = syntheticBatch(6, { batchSize: items, vocabSize: 300, featureDim: 16, numClasses: 12 });
      const gradOf = async (s: number) => {
        const params = ParamArena.init(config, 1, sharedFloats);
        const shared = createSharedTraining(params, AdamState.create(params.layout, sharedFloats), 1, s);
        const pool = await WorkerPool.start(shared, { backend: 'wasm', fusionMode: 1, fixes: DEFAULT_FIXES, weights: DEFAULT_LOSS_WEIGHTS });
        try {
          const r = await pool.micro(batch, 1, true);
          return { r, grad: stepGradient(shared), layout: params.layout };
        } finally {
          await pool.close();
        }
      };
      const whole = await gradOf(1);
      const cut = await gradOf(shares);
      const what = `${items} items in ${shares} shares`;
      expect(whole.r.losses.loss_tri, what).toBeGreaterThan(0);
      expect(Math.abs(cut.r.loss - whole.r.loss) / whole.r.loss, what).toBeLessThan(1e-6);
      for (const k of Object.keys(whole.r.losses) as (keyof typeof whole.r.losses)[]) expect(cut.r.losses[k]! / whole.r.losses[k]!, `${what}: ${k}`).toBeCloseTo(1, 6);
      let scale = 0;
      let diff = 0;
      whole.grad.forEach((g, i) => {
        scale = Math.max(scale, Math.abs(g));
        diff = Math.max(diff, Math.abs(g - cut.grad[i]!));
      });
      expect(diff / scale, what).toBeLessThan(1e-5);
      // the tensor only the structure loss reaches: the swapped rows carry its gradient across shares
      const pooled = whole.layout.slots.find((x) => x.name === 'map_bi_to_individual.weight')!;
      const norm = (g: Float32Array) => Math.hypot(...g.subarray(pooled.offset, pooled.offset + pooled.size));
      expect(norm(whole.grad), what).toBeGreaterThan(0);
      expect(Math.abs(norm(cut.grad) - norm(whole.grad)) / norm(whole.grad), what).toBeLessThan(1e-3);
    }
  });

  it('a worker that fails mid-step surfaces as an error naming it and its cause; the worker waiting for it is released', async () => {
    const config = modelConfig('k3m-small', { ...TINY_MODEL, vocab_size: 300, v_feature_size: 16, v_target_size: 12 });
    const params = ParamArena.init(config, 1, sharedFloats);
    const shared = createSharedTraining(params, AdamState.create(params.layout, sharedFloats), 2);
    const pool = await WorkerPool.start(shared, { backend: 'wasm', fusionMode: 1, fixes: DEFAULT_FIXES, weights: DEFAULT_LOSS_WEIGHTS });
    const batch = syntheticBatch(3, { batchSize: 4, vocabSize: 300, featureDim: 16, numClasses: 12 });
    // A token outside the vocabulary in item 3: the second share (items 2-3) fails in its
    // forward pass; the first (items 0-1) is whole and goes on to swap its first row, where it
    // waits for the second.
    batch.inputIds[3 * batch.shape.titleLen + 1] = 300;
    const t0 = performance.now();
    const err = await pool.micro(batch, 1, true).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(/^training worker 1: .*the index value 300 is not in \[0, 299\]/);
    expect(performance.now() - t0).toBeLessThan(30_000);
    // the pool is closed: later requests fail at once with the same cause
    await expect(pool.apply(0.1, 1)).rejects.toThrow(/training worker 1/);
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
        return { loss: r.loss, grad: stepGradient(shared) };
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

  it('a share that does not reach the heads (nothing labelled) with the structure loss on: no deadlock at the exchange, and the gradient of one worker', async () => {
    // Worker 1's share reaches the MLM heads before the structure loss's exchange in its backward
    // pass; worker 0's does not reach them at all, so their turn comes only after worker 0 is past
    // the exchange, where it waits for worker 1. Worker 1 must not wait for that turn there.
    const config = modelConfig('k3m-small', { ...TINY_MODEL, vocab_size: 300, v_feature_size: 16, v_target_size: 12 });
    const batch = syntheticBatch(4, { batchSize: 4, vocabSize: 300, featureDim: 16, numClasses: 12 });
    const { titleLen: Lt, pvLen: Lp, regions: R } = batch.shape;
    batch.lmLabelIds.fill(-1, 0, 2 * Lt);
    batch.lmLabelIdsPv.fill(-1, 0, 2 * Lp);
    batch.imageLabel.fill(0, 0, 2 * R);
    const gradsOf = async (workers: number) => {
      const params = ParamArena.init(config, 1, sharedFloats);
      const shared = createSharedTraining(params, AdamState.create(params.layout, sharedFloats), workers, 2);
      const pool = await WorkerPool.start(shared, { backend: 'wasm', fusionMode: 1, fixes: DEFAULT_FIXES, weights: DEFAULT_LOSS_WEIGHTS });
      try {
        const r = await pool.micro(batch, 1, true);
        return { losses: r.losses, grad: stepGradient(shared), has: Uint8Array.from(shared.hasGrad) };
      } finally {
        await pool.close();
      }
    };
    const one = await gradsOf(1);
    const two = await gradsOf(2);
    expect(one.losses.loss_tri).toBeGreaterThan(0);
    expect(one.losses.masked_loss_t).toBeGreaterThan(0);
    expect(Array.from(two.has)).toEqual(Array.from(one.has));
    expect(Buffer.from(two.grad.buffer).equals(Buffer.from(one.grad.buffer))).toBe(true);
  }, 60_000);

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

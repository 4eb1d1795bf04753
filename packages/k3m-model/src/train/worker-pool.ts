/**
 * @file Data-parallel training over worker threads (the coordinator's side). Each worker has its
 * own TensorFlow.js back end and a copy of the weights. A micro-batch is cut into a fixed number
 * of shares (`--shares`, batch-share.ts), dealt round-robin. A worker runs all its shares in one
 * pass, each on its own copy of the weights and with the WHOLE micro-batch's denominators, the
 * shares' first c_initial rows (the structure loss's negatives, reference 4.6) swapped through
 * shared memory; so a share's gradient is the same bits whichever worker computes it. Each share
 * adds its gradient of each tensor to the step's when every earlier share has (share order, tensor
 * by tensor), and one AdamW update over shared memory is split over the workers by element
 * ranges. N workers thus train the same bits as one.
 *
 * The coordinator never blocks: it talks to workers by messages. A worker that fails (an
 * exception, a crash, an exit) fails the pending request with `training worker i: <its cause>`,
 * sets the shared abort word so no other worker waits for it, and every worker is terminated.
 */
import { Worker } from 'node:worker_threads';
import { stopWorker, workerStarted } from '@k3m-kit/core';
import type { Batch } from '../data/batch.ts';
import type { AccuracyCounts, FusionMode, LossWeights, ModelFixes } from '../model/k3m.ts';
import { batchCounts, shareRange, sharesIn, sliceBatch } from './batch-share.ts';
import { abortAll, BARRIER_WORDS } from './shared-barrier.ts';
import { CONTROL, type SharedTraining } from './shared-training.ts';
import type { FromWorker, LossParts, ShareJob, ToWorker, WorkerInit } from './train-worker.ts';

export interface PoolOptions {
  backend: string;
  fusionMode: FusionMode;
  fixes: ModelFixes;
  weights: LossWeights;
}

/** A micro-batch's summed loss and its losses (each the whole micro-batch's). */
export interface MicroResult {
  loss: number;
  losses: LossParts;
}

/** How long an aborted worker's message waits for the failing worker's own. */
const ABORT_GRACE_MS = 200;

type Waiter = { resolve: (m: FromWorker) => void; reject: (e: Error) => void };

/**
 * A worker's tensors live in its wasm heap; its JS heap stays near 40 MB. A 4 MB young generation
 * instead of V8's default (16 MB semi-spaces) lowered the peak RSS of k3m-small on 2 workers by
 * 50-80 MB (0.94 -> 0.86-0.90 GB, 2 runs each) at the same step time.
 */
const WORKER_LIMITS = { maxYoungGenerationSizeMb: 4 };

export class WorkerPool {
  private readonly waiting = new Map<string, Waiter>();
  private failure?: Error;
  private closing = false;
  private nextId = 0;
  private nextValidator = 0;
  /** Shares added to step gradients so far: the turn of each micro-batch's first share. */
  private sharesAdded = 0;

  private constructor(
    readonly shared: SharedTraining,
    private readonly workers: Worker[],
    /** Each worker's start (ready or failed): a thread is never terminated before it, see core's threads.ts. */
    private readonly starts: Promise<void>[],
  ) {}

  /** Starts `shared.workers` workers and waits until each has its back end and weights. */
  static async start(shared: SharedTraining, o: PoolOptions): Promise<WorkerPool> {
    const entry = new URL('./train-worker.js', import.meta.url);
    const workers = Array.from({ length: shared.workers }, (_, index) => new Worker(entry, { workerData: { index, shared, ...o } satisfies WorkerInit, resourceLimits: WORKER_LIMITS }));
    const starts = workers.map((w) => workerStarted(w, (m) => ['ready', 'error'].includes((m as FromWorker).type)));
    const pool = new WorkerPool(shared, workers, starts);
    workers.forEach((w, i) => {
      w.on('message', (m: FromWorker) => pool.receive(i, m));
      w.on('error', (e) => pool.fail(i, e));
      w.on('exit', (code) => pool.closing || pool.fail(i, new Error(`exited with code ${code}`)));
    });
    await Promise.all(workers.map((_, i) => pool.expect(i, 'ready')));
    return pool;
  }

  get size(): number {
    return this.workers.length;
  }

  /**
   * Forward and backward of one micro-batch on every worker; gradients accumulate in shared
   * memory until {@link apply}. `key` seeds the micro-batch's dropout and Gumbel streams.
   */
  async micro(batch: Batch, key: number, fresh: boolean): Promise<MicroResult> {
    const B = batch.shape.batchSize;
    const W = this.size;
    const parts = sharesIn(B, this.shared.shares);
    const counts = parts > 1 ? batchCounts(batch) : undefined;
    const base = this.sharesAdded;
    this.sharesAdded = (this.sharesAdded + parts) | 0;
    const replies = await Promise.all(
      this.workers.map((_, w) => {
        const shares: ShareJob[] = [];
        for (let k = w; k < parts; k += W) {
          const [from, to] = shareRange(B, parts, k);
          shares.push({ batch: parts === 1 ? batch : sliceBatch(batch, from, to), items: Array.from({ length: to - from }, (_, i) => from + i), index: k });
        }
        // A slice is this worker's own copy: its buffers move instead of being copied again.
        const transfer = parts === 1 ? [] : shares.flatMap((x) => transferables(x.batch));
        return this.request(w, { type: 'micro', id: 0, shares, parts, key, base, counts, fresh }, transfer);
      }),
    );
    // The losses in share order too: share k is worker k mod W's (k div W)-th.
    const losses: LossParts = {};
    let loss = 0;
    for (let k = 0; k < parts; k++) {
      const r = (replies[k % W] as Extract<FromWorker, { type: 'micro' }>).shares[Math.floor(k / W)]!;
      loss += r.loss;
      for (const [name, v] of Object.entries(r.losses) as [keyof LossParts, number][]) losses[name] = (losses[name] ?? 0) + v;
    }
    return { loss, losses };
  }

  /**
   * One AdamW update from the accumulated gradients times `scale` (after optional clipping to
   * `clip`), at learning rate `lr`; the shared per-tensor steps must already count it. Returns the
   * global gradient norm when clipping.
   */
  async apply(lr: number, scale: number, clip?: number): Promise<number | undefined> {
    const replies = await Promise.all(this.workers.map((_, w) => this.request(w, { type: 'apply', id: 0, lr, scale, clip })));
    return (replies[0] as Extract<FromWorker, { type: 'apply' }>).norm;
  }

  /** Losses and accuracy counts of one validation batch, on the next worker in turn. */
  async validate(batch: Batch): Promise<{ losses: LossParts; accuracy: AccuracyCounts }> {
    const w = this.nextValidator++ % this.size;
    return (await this.request(w, { type: 'validate', id: 0, batch })) as Extract<FromWorker, { type: 'validate' }>;
  }

  /** Terminates every worker, each once it has started (idempotent). */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.workers.map((w, i) => stopWorker(w, this.starts[i]!)));
  }

  private request(w: number, m: ToWorker, transfer: ArrayBuffer[] = []): Promise<FromWorker> {
    const msg = { ...m, id: this.nextId++ };
    const reply = this.expect(w, msg.type, msg.id);
    if (!this.failure) this.workers[w]!.postMessage(msg, transfer);
    return reply;
  }

  private expect(w: number, type: string, id?: number): Promise<FromWorker> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => this.waiting.set(`${w}/${type}/${id ?? ''}`, { resolve, reject }));
  }

  private receive(w: number, m: FromWorker): void {
    if (m.type === 'error') {
      const e = new Error(m.message);
      if (m.stack) e.stack = m.stack;
      // A worker that stopped because another aborted is not the cause: give the cause time to arrive.
      if (m.aborted) setTimeout(() => this.fail(w, e), ABORT_GRACE_MS);
      else this.fail(w, e);
      return;
    }
    const key = `${w}/${m.type}/${'id' in m ? m.id : ''}`;
    const waiter = this.waiting.get(key);
    this.waiting.delete(key);
    waiter?.resolve(m);
  }

  /** The first failure wins: abort the other workers, fail every request, stop all threads. */
  private fail(w: number, cause: Error): void {
    if (this.failure || this.closing) return;
    this.failure = new Error(`training worker ${w}: ${cause.message}`, { cause });
    const c = this.shared.control;
    abortAll(c.subarray(CONTROL.abort, CONTROL.abort + 1), [CONTROL.stepBarrier, CONTROL.exchangeBarrier].map((at) => c.subarray(at, at + BARRIER_WORDS)));
    for (const waiter of this.waiting.values()) waiter.reject(this.failure);
    this.waiting.clear();
    void this.close();
  }
}

/** The buffers of a batch's typed arrays. */
function transferables(b: Batch): ArrayBuffer[] {
  return Object.values(b)
    .filter((v): v is Int32Array | Float32Array => v instanceof Int32Array || v instanceof Float32Array)
    .map((v) => v.buffer as ArrayBuffer);
}

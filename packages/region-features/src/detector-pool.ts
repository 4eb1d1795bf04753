/**
 * @file Detector worker threads: N workers, each with its own TensorFlow.js back end and
 * detector over one shared copy of the weights, take images one at a time in the order they are
 * submitted. Results come back as promises, so the caller writes them in input order whatever
 * worker finished first: the output does not depend on N.
 *
 * A worker that fails (while starting, on an image, or by dying) fails the whole pool: every
 * pending and later image rejects with a {@link WorkerError} carrying the worker's cause, and
 * all workers are terminated, so nothing waits on a worker that will never answer.
 */
import { Worker } from 'node:worker_threads';
import { stopWorker, UsageError, workerStarted } from '@k3m-kit/core';
import type { BackendName } from '@k3m-kit/core/backend';
import type { TsvForm } from './codecs/feature-tsv.ts';
import type { DecodedImage } from './image.ts';
import type { SelectionRule } from './model/boxes.ts';
import type { DetectorConfig } from './model/presets.ts';
import type { SharedParams } from './shared-params.ts';

/** What a worker is started with (its `workerData`). */
export interface WorkerInit {
  /** URL of ./detector-worker.ts, imported by the boot script. */
  entry: string;
  config: DetectorConfig;
  backend: BackendName;
  params: SharedParams;
  rule: SelectionRule;
  form: TsvForm;
  attributes: boolean;
}

export interface ToWorker {
  id: number;
  imageId: string;
  img: DecodedImage;
}

interface SerializedError {
  name: string;
  message: string;
  stack?: string;
}

export type FromWorker =
  | { type: 'ready'; backend: string }
  /** The encoded TSV line, newline included. */
  | { type: 'row'; id: number; bytes: Uint8Array }
  | { type: 'rejected'; id: number; reason: string; detail: string }
  | { type: 'failed'; id?: number; error: SerializedError };

/** An image's outcome: its TSV line's bytes, or why it is rejected. */
export type ImageResult = { bytes: Uint8Array } | { reason: string; detail: string };

/** A worker failed; `message` names the worker and its cause, `cause` carries the worker's stack. */
export class WorkerError extends Error {
  override name = 'WorkerError';
}

export type PoolOptions = Omit<WorkerInit, 'entry'> & { workers: number };

interface Slot {
  worker: Worker;
  index: number;
  busy?: { id: number; resolve: (r: ImageResult) => void; reject: (e: Error) => void };
}

const BOOT = new URL('./detector-worker-boot.js', import.meta.url);
const ENTRY = new URL('./detector-worker.ts', import.meta.url).href;

export class DetectorPool {
  private readonly slots: Slot[] = [];
  private readonly queue: { job: ToWorker; resolve: (r: ImageResult) => void; reject: (e: Error) => void }[] = [];
  private failure?: Error;
  private nextId = 0;

  private constructor(readonly backend: string) {}

  /**
   * Starts `workers` threads and waits until each has its back end and detector. A worker that
   * cannot start rejects with its cause (a {@link UsageError} stays one, e.g. an unavailable
   * `--backend`) after every worker is terminated.
   */
  static async start(o: PoolOptions): Promise<DetectorPool> {
    const { workers, ...rest } = o;
    const init: WorkerInit = { entry: ENTRY, ...rest };
    const started = Array.from({ length: workers }, (_, index) => new Worker(BOOT, { workerData: init, name: `detector-${index}` }));
    const starts = started.map((w) => workerStarted(w, (m) => ['ready', 'failed'].includes((m as FromWorker).type)));
    try {
      const backends = await Promise.all(started.map(waitReady));
      const pool = new DetectorPool(backends[0]!);
      started.forEach((w, index) => pool.attach(w, index));
      return pool;
    } catch (e) {
      // The others may still be loading native add-ons, where terminating kills the process (core's threads.ts).
      await Promise.all(started.map((w, i) => stopWorker(w, starts[i]!)));
      throw e;
    }
  }

  get size(): number {
    return this.slots.length;
  }

  /** Runs one image on the next free worker; resolves with its row or reject reason. */
  run(imageId: string, img: DecodedImage): Promise<ImageResult> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.queue.push({ job: { id: this.nextId++, imageId, img }, resolve, reject });
      this.dispatch();
    });
  }

  /**
   * Terminates every worker; pending images reject with `reason` (default: the pool was
   * closed). Safe to call more than once.
   */
  async close(reason?: Error): Promise<void> {
    this.fail(reason ?? new WorkerError('detector pool closed'));
    // Every worker reported its start before the pool existed: terminating cannot cut a native add-on's load short.
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }

  private attach(worker: Worker, index: number): void {
    const slot: Slot = { worker, index };
    this.slots.push(slot);
    worker.on('message', (m: FromWorker) => {
      const busy = slot.busy;
      if (m.type === 'failed') {
        this.fail(workerFailure(index, m.error));
        return;
      }
      if (m.type === 'ready' || !busy || busy.id !== m.id) return;
      slot.busy = undefined;
      busy.resolve(m.type === 'row' ? { bytes: m.bytes } : { reason: m.reason, detail: m.detail });
      this.dispatch();
    });
    worker.on('error', (e) => this.fail(workerFailure(index, e)));
    worker.on('exit', (code) => {
      if (!this.failure) this.fail(new WorkerError(`detector worker ${index}: exited with code ${code}`));
    });
  }

  private dispatch(): void {
    for (const slot of this.slots) {
      if (slot.busy || !this.queue.length || this.failure) continue;
      const { job, resolve, reject } = this.queue.shift()!;
      slot.busy = { id: job.id, resolve, reject };
      slot.worker.postMessage(job);
    }
  }

  /** The first failure wins: everything pending rejects with it, and the workers are stopped. */
  private fail(e: Error): void {
    if (this.failure) return;
    this.failure = e;
    for (const slot of this.slots) {
      slot.busy?.reject(e);
      slot.busy = undefined;
      void slot.worker.terminate();
    }
    for (const q of this.queue.splice(0)) q.reject(e);
  }
}

/** Resolves with the worker's back end once it is ready; rejects with its cause if it fails first. */
function waitReady(worker: Worker, index: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const done = () => {
      worker.off('message', onMessage).off('error', onError).off('exit', onExit);
    };
    const onMessage = (m: FromWorker) => {
      if (m.type !== 'ready' && m.type !== 'failed') return;
      done();
      if (m.type === 'ready') resolve(m.backend);
      else reject(workerFailure(index, m.error));
    };
    const onError = (e: Error) => {
      done();
      reject(workerFailure(index, e));
    };
    const onExit = (code: number) => {
      done();
      reject(new WorkerError(`detector worker ${index}: exited with code ${code} while starting`));
    };
    worker.on('message', onMessage).on('error', onError).on('exit', onExit);
  });
}

function workerFailure(index: number, e: SerializedError | Error): Error {
  const message = `detector worker ${index}: ${e.message}`;
  if (e.name === 'UsageError') return new UsageError(e.message);
  const err = new WorkerError(message);
  if (e.stack) err.cause = e.stack;
  return err;
}

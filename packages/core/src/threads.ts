/**
 * @file Stopping worker threads safely. `worker.terminate()` while the thread is still loading a
 * native add-on (koffi for the BLAS, msgpackr-extract) kills the whole process: the add-on's
 * init goes on calling N-API after termination has begun, N-API refuses, and node-addon-api
 * turns the refused throw into `FATAL ERROR: Error::ThrowAsJavaScriptException napi_throw`.
 * Seen in CI (a detector worker failing to start while the other loaded koffi), and reproduced
 * by terminating threads at random moments of `require('koffi')`. Threads load their add-ons
 * before they report they have started, so pools wait for that report (or the thread's end)
 * before terminating it: {@link workerStarted} and {@link stopWorker}.
 */
import type { Worker } from 'node:worker_threads';

/** How long {@link stopWorker} waits for a thread that never reports its start before terminating it anyway. */
export const WORKER_START_GRACE_MS = 60_000;

/**
 * Resolves once `worker` has started: its first message that `isStart` accepts (its "ready" or
 * "failed"), an `error` or its `exit`. Never rejects; create it right after `new Worker`, before
 * the thread can answer.
 * @example const started = workerStarted(w, (m) => (m as { type?: string }).type === 'ready');
 */
export function workerStarted(worker: Worker, isStart: (message: unknown) => boolean): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      worker.off('message', onMessage).off('error', done).off('exit', done);
      resolve();
    };
    const onMessage = (m: unknown) => {
      if (isStart(m)) done();
    };
    worker.on('message', onMessage).on('error', done).on('exit', done);
  });
}

/**
 * Terminates `worker` once `started` (its {@link workerStarted}) has resolved, so never in the
 * middle of loading a native add-on; a thread that has not reported within `graceMs` is
 * terminated regardless. Safe on a thread that has exited.
 */
export async function stopWorker(worker: Worker, started: Promise<void>, graceMs = WORKER_START_GRACE_MS): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([started, new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
  clearTimeout(timer);
  await worker.terminate();
}

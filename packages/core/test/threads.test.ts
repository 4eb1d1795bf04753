/**
 * core's threads.ts: a thread is terminated only after it reports its start. The threads here
 * stand in for one loading a native add-on: synchronous work between two marks in shared memory,
 * which lasts until the test releases it. Terminated in the middle, a thread never reaches the
 * second mark.
 */
import { Worker } from 'node:worker_threads';
import { expect, test } from 'vitest';
import { stopWorker, workerStarted } from '../src/threads.ts';

// Word 0: the marks (1 inside the start, 2 past it); word 1: set by the test to end the start.
const SLOW_START = `
const { parentPort, workerData: words } = require('node:worker_threads');
Atomics.store(words, 0, 1);
while (Atomics.load(words, 1) === 0);
Atomics.store(words, 0, 2);
parentPort.postMessage('ready');
setInterval(() => {}, 1000); // then it idles until terminated
`;

async function startSlow(): Promise<{ worker: Worker; words: Int32Array; started: Promise<void> }> {
  const words = new Int32Array(new SharedArrayBuffer(8));
  const worker = new Worker(SLOW_START, { eval: true, workerData: words });
  const started = workerStarted(worker, (m) => m === 'ready');
  // Inside its start: the first mark is set.
  while (Atomics.load(words, 0) === 0) await new Promise((r) => setTimeout(r, 1));
  return { worker, words, started };
}

test('stopWorker waits for a starting thread to report before terminating it; terminate() alone cuts the start short', async () => {
  // Never released: only termination ends its start.
  const alone = await startSlow();
  await alone.worker.terminate();
  expect(Atomics.load(alone.words, 0)).toBe(1);

  const stopped = await startSlow();
  const stopping = stopWorker(stopped.worker, stopped.started);
  await new Promise((r) => setTimeout(r, 200));
  expect(Atomics.load(stopped.words, 0)).toBe(1); // still starting: not terminated yet
  Atomics.store(stopped.words, 1, 1);
  await stopping;
  expect(Atomics.load(stopped.words, 0)).toBe(2);
}, 30_000);

test('a thread that fails or exits before it reports counts as started, so stopping it does not wait for the grace period', async () => {
  for (const code of ['throw new Error("no start")', 'process.exit(3)']) {
    const worker = new Worker(code, { eval: true });
    worker.on('error', () => undefined);
    const exited = new Promise<number>((r) => worker.on('exit', r));
    // An hour's grace: waiting for it would time the test out.
    await stopWorker(worker, workerStarted(worker, (m) => m === 'ready'), 3_600_000);
    expect(await exited, code).toBe(code.startsWith('throw') ? 1 : 3);
  }
}, 30_000);

test('a thread that never reports is terminated after the grace period', async () => {
  const worker = new Worker('setInterval(() => {}, 1000)', { eval: true });
  const exited = new Promise<number>((r) => worker.on('exit', r));
  await stopWorker(worker, workerStarted(worker, (m) => m === 'ready'), 200);
  expect(await exited).toBe(1);
}, 30_000);

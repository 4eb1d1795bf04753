/**
 * @file A feature-decoding worker thread (started by {@link FeatureRowDecoder}): decodes the
 * lines it is sent and sends each result back with its job id, transferring the arrays and the
 * line's buffer. Arrays the main thread is done with come back with later lines (`give`) and
 * are decoded into again, so no row costs fresh pages.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { BufferPool, decodeRow, rowBuffers, type RowOptions } from './feature-rows.ts';

const options = (workerData as { options: RowOptions }).options;
const pool = new BufferPool(8);
parentPort!.on('message', (m: { id: number; bytes: Uint8Array; give: ArrayBuffer[] }) => {
  for (const b of m.give) pool.release(b);
  const row = decodeRow(m.bytes, options, pool);
  parentPort!.postMessage({ id: m.id, row, line: m.bytes.buffer }, [...rowBuffers(row), m.bytes.buffer as ArrayBuffer]);
});
// Its imports (msgpackr's native add-on) are loaded: from here on it may be terminated (core's threads.ts).
parentPort!.postMessage({ ready: true });

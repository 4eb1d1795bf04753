/**
 * @file A feature-decoding worker thread (started by {@link FeatureRowDecoder}): decodes the
 * lines it is sent and sends each result back with its job id, transferring the arrays.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { decodeRow, rowBuffers, type RowOptions } from './feature-rows.ts';

const options = (workerData as { options: RowOptions }).options;
parentPort!.on('message', (m: { id: number; bytes: Uint8Array }) => {
  const row = decodeRow(m.bytes, options);
  parentPort!.postMessage({ id: m.id, row }, rowBuffers(row));
});

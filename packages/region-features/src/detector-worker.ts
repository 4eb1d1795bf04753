/**
 * @file One detector worker thread (started by ./detector-pool.ts through
 * detector-worker-boot.js): its own TensorFlow.js back end and detector over the shared weights,
 * one image at a time, answering with the encoded TSV line or the reason the image is rejected.
 * Anything thrown is sent back with its name, message and stack.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { describeBackend, selectBackend } from '@k3m-kit/core/backend';
import { encodeFeatureRow } from './codecs/feature-tsv.ts';
import type { FromWorker, ToWorker, WorkerInit } from './detector-pool.ts';
import { extractImage } from './extract-image.ts';
import { Detector } from './model/detector.ts';
import { sharedParamViews } from './shared-params.ts';

const port = parentPort!;
const init = workerData as WorkerInit;
const send = (m: FromWorker, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);
const errorOf = (e: unknown) => ({ name: (e as Error)?.name ?? 'Error', message: (e as Error)?.message ?? String(e), stack: (e as Error)?.stack });
const encoder = new TextEncoder();

try {
  const backend = await selectBackend(init.backend);
  const det = new Detector(init.config, sharedParamViews(init.params));
  port.on('message', async ({ id, imageId, img }: ToWorker) => {
    try {
      const res = await extractImage(det, imageId, img, init.rule, init.attributes);
      if ('reason' in res) send({ type: 'rejected', id, reason: res.reason, detail: res.detail });
      else {
        // A fresh buffer of its own, so it can be transferred rather than copied.
        const bytes = encoder.encode(encodeFeatureRow(res, init.form) + '\n');
        send({ type: 'row', id, bytes }, [bytes.buffer as ArrayBuffer]);
      }
    } catch (e) {
      send({ type: 'failed', id, error: errorOf(e) });
    }
  });
  send({ type: 'ready', backend: describeBackend(backend) });
} catch (e) {
  send({ type: 'failed', error: errorOf(e) });
}

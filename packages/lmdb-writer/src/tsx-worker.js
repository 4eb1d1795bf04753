// A worker thread's entry: TypeScript modules need tsx's loader, which a new thread does not
// inherit in Node 20, so register it here and then load the module named in workerData.
import { register } from 'tsx/esm/api';
import { workerData } from 'node:worker_threads';

register();
await import(workerData.module);

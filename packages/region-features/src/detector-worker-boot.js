// Entry of a detector worker thread: a worker starts without the parent's TypeScript loader
// (tsx under the CLI, vite under vitest), so it registers tsx itself, as bin/ does.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.entry);

// Entry of a detector worker thread: a worker starts without the parent's TypeScript loader
// (tsx under the CLI, vite under vitest), so it registers tsx itself, as bin/ does, after
// loading TensorFlow.js and its wasm back end through Node (less memory than through tsx's
// loader; the TypeScript imports reuse these modules).
import '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.entry);

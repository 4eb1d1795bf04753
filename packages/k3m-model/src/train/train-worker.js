// Worker-thread entry of data-parallel training: registers tsx (no build step) in this thread,
// then runs the TypeScript worker (train-worker.ts). TensorFlow.js and its wasm back end are
// loaded first, by Node itself: loaded through tsx's loader, the same CommonJS bundles take
// about 55 MB more of each thread's memory (measured), and the TypeScript imports reuse these.
import '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { register } from 'tsx/esm/api';

register();
await import('./train-worker.ts');

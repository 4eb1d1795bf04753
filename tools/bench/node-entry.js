// Runs a TypeScript file the way the packages' bin/ scripts run the CLIs (TensorFlow.js loaded by
// Node, then tsx registered), so a benchmark's child process measures the memory a user's run
// takes: `node tools/bench/node-entry.js <file.ts> [args]`.
import { pathToFileURL } from 'node:url';
import '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { register } from 'tsx/esm/api';

register();
// The script sees itself as argv[1], as under `node file` or `npx tsx file`.
process.argv.splice(1, 1);
await import(pathToFileURL(process.argv[1]).href);

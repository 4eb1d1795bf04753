#!/usr/bin/env node
// Runs the TypeScript CLI through tsx, so no build step sits between a clone and the first run.
// TensorFlow.js and its wasm back end are loaded first, by Node itself: loaded through tsx's
// loader the same CommonJS bundles take more memory (k3m-model's bin measured 55 MB); the
// TypeScript imports reuse these modules.
import '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { register } from 'tsx/esm/api';

register();
await import('../src/cli.ts');

/**
 * @file Benchmarks only: starts tfjs-backend-wasm's threaded SIMD build in Node, which the
 * package switches off there (`WASM_HAS_MULTITHREAD_SUPPORT` is false under Node, its pthread
 * worker script and the factory it loads are handed over as Blob URLs, which Node's Worker cannot
 * open, and its thread count is capped at half the logical cores). This loader writes both
 * scripts to files, sets the flag and the thread count, and reports enough cores while the
 * module starts. tools/bench/train.ts measures the result against data-parallel workers; the
 * trainer uses data parallelism (see packages/k3m-model/README.md, "Speed").
 */
import os from 'node:os';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { getThreadsCount, setThreadsCount } from '@tensorflow/tfjs-backend-wasm';

/** The bundle's module-scope names its embedded factory refers to (tf-backend-wasm.node.js header). */
const FACTORY_PRELUDE = "var commonjsGlobal=globalThis,require$$0=require('fs'),require$$1=require('path'),require$$3=require('perf_hooks'),require$$4=require('os');";

/** Starts the wasm back end with `threads` threads (before any other back end use); returns the count it runs. */
export async function startThreadedWasm(threads: number): Promise<number> {
  const dir = mkdtempSync(join(os.tmpdir(), 'tfjs-wasm-threads-'));
  const factory = join(dir, 'factory.js');
  const OriginalBlob = globalThis.Blob;
  const createObjectURL = URL.createObjectURL;
  const cpus = os.cpus;
  const texts = new WeakMap<object, string>();
  globalThis.Blob = class extends OriginalBlob {
    constructor(...[parts, options]: ConstructorParameters<typeof Blob>) {
      super(parts, options);
      const text = (parts ?? []).join('');
      texts.set(this, text);
      if (text.startsWith('var WasmBackendModuleThreadedSimd')) writeFileSync(factory, FACTORY_PRELUDE + text);
    }
  };
  URL.createObjectURL = (blob: Blob) => {
    // The pthread worker script: it loads the factory from its file.
    const file = join(dir, 'worker.js');
    writeFileSync(file, texts.get(blob)!.replace('if(typeof e.data.urlOrBlob=="string"){importScripts(e.data.urlOrBlob)}', `if(true){importScripts(${JSON.stringify(factory)})}`));
    return file;
  };
  os.cpus = () => Array.from({ length: 2 * threads }, () => cpus()[0]!);
  try {
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
    setThreadsCount(threads);
    if (!(await tf.setBackend('wasm'))) throw new Error('the threaded wasm back end did not start');
    await tf.ready();
  } finally {
    globalThis.Blob = OriginalBlob;
    URL.createObjectURL = createObjectURL;
    os.cpus = cpus;
  }
  return getThreadsCount();
}

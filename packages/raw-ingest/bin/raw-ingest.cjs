#!/usr/bin/env node
'use strict';
// CommonJS on purpose. libuv sizes its thread pool, which runs sharp's decodes and all file I/O,
// when the pool is first used, and loading an ES module already uses it: only here, before any
// ES module loads, does a size take effect. The pool holds the decodes in flight (by default 2
// per core, see --decode-concurrency) plus 4 threads so that file writes never queue behind them.
const { availableParallelism } = require('node:os');

process.env.UV_THREADPOOL_SIZE ??= String(2 * availableParallelism() + 4);

// Runs the TypeScript CLI through tsx, so no build step sits between a clone and the first run.
import('tsx/esm/api').then(({ register }) => {
  register();
  return import('../src/cli.ts');
});

/**
 * @file `@k3m-kit/core`: what every stage shares, and nothing stage-specific. The TensorFlow.js
 * back-end choice is the separate entry `@k3m-kit/core/backend`, so stages without a model do not
 * load TensorFlow.js.
 */

// Errors and exit codes
export * from './errors.ts';
// Files: atomic writes, streamed lines
export * from './atomic.ts';
export * from './lines.ts';
// Images: what a sharp failure means, independent of libvips' shared error text
export * from './image-errors.ts';
// Work split: --shard i/N and the schedulers' variables
export * from './shard.ts';
// Accounting: the count ledger, reject logs, reports
export * from './ledger.ts';
export * from './rejects.ts';
export * from './report.ts';
export * from './summary.ts';
// People: progress bars
export * from './progress.ts';
// CLI: common options, config files, the runner
export * from './cli.ts';
export * from './options.ts';
// Randomness: the one seeded generator
export * from './rng.ts';
// Processes: glibc malloc settings for stages that churn through large buffers; stopping threads
export * from './malloc.ts';
export * from './threads.ts';
// Tensors on disk: safetensors
export * from './safetensors.ts';

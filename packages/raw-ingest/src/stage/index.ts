/**
 * @file Conventions every stage shares: exit codes, atomic writes, sharding, reject logs,
 * reports, progress and the common CLI options. Imported as `@k3m-kit/raw-ingest/stage`;
 * raw-ingest owns it because it is the first stage and every other stage depends on it.
 */
export * from './errors.ts';
export * from './atomic.ts';
export * from './shard.ts';
export * from './rejects.ts';
export * from './report.ts';
export * from './progress.ts';
export * from './cli.ts';
export * from './random.ts';

/**
 * @file The data path's public API: decoded LMDB records to model batches (k3m-reference.md 3),
 * the tokenizer and vocabulary, and modality-missing/noise simulation (reference 6).
 * Re-exported from the package entry.
 */
export * from './batch.ts';
export * from './tokenizer.ts';
export * from './vocab.ts';
export * from './preprocess.ts';
export * from './collate.ts';
export * from './corrupt.ts';
export * from './pipeline.ts';

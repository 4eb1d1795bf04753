/**
 * @file Records to batches: check, shuffle (bounded buffer), group, corrupt, tokenise,
 * preprocess, collate (k3m-reference.md 3.1).
 *
 * One call is one epoch: one pass over the given records, full batches only by default, so an
 * epoch is floor(N/B) batches. The reference instead slices floor(N/B) batches off an endless
 * locally shuffled stream (bug 18); a pass with a shuffle buffer sees every record once per epoch.
 * Validation mode reads records in order and masks the same stochastic way as training
 * (reference 3.1), seeded, so a fixed (seed, epoch) gives the same validation batches each time.
 *
 * Every random draw is keyed by (seed, mode, epoch) plus the record's position in the epoch or
 * the batch index, never by what was drawn before, so `skipBatches` (resume) replays the shuffle
 * only and the batches that follow are identical to those of an uninterrupted epoch.
 */
import type { K3mRecord } from '@k3m-kit/lmdb-writer';
import type { Batch } from './batch.ts';
import { collate } from './collate.ts';
import { corrupts, corruptRecords, resolveCorruptionRates, type CorruptionRates } from './corrupt.ts';
import { RecordError, knowledgeText, preprocess, recordProblem, resolvePreprocessOptions, type PreprocessOptions, type ResolvedPreprocessOptions, type Sample } from './preprocess.ts';
import { Rng } from '@k3m-kit/core';
import type { K3mTokenizer } from './tokenizer.ts';

export const PIPELINE_MODES = Object.freeze({ train: 'train', validation: 'validation' } as const);
export type PipelineMode = keyof typeof PIPELINE_MODES;

export interface PipelineOptions extends PreprocessOptions {
  tokenizer: K3mTokenizer;
  batchSize: number;
  /** train: shuffled, validation: in order (default train). */
  mode?: PipelineMode;
  /** Base seed of every draw (default 42, the reference's). */
  seed?: number;
  /** Keys the shuffle and the masking, so epochs differ (default 0). */
  epoch?: number;
  /** Records held for shuffling in train mode (default 5000, the reference's cache). */
  shuffleBuffer?: number;
  /** Drop the last partial batch (default true, as the reference). */
  dropLast?: boolean;
  /** Modality-missing/noise probabilities applied per batch, donors from the same batch. */
  corruption?: CorruptionRates;
  /** Batches of this epoch to pass over without preprocessing (resume). */
  skipBatches?: number;
  /** Stop after this many batches (counting skipped ones): an epoch of an endless stream, or a step limit. */
  maxBatches?: number;
  /** Called for a record that cannot become a sample; without it such a record throws. */
  onReject?: (record: K3mRecord, reason: string) => void;
}

/**
 * Fills a buffer of `size`, then emits a uniformly chosen buffered record for each new one;
 * the rest, shuffled, at the end. size <= 1 keeps the order.
 */
export async function* shuffleBuffer<T>(items: AsyncIterable<T> | Iterable<T>, size: number, rng: Rng): AsyncGenerator<T> {
  const buf: T[] = [];
  for await (const x of items) {
    if (buf.length < size) {
      buf.push(x);
      continue;
    }
    const j = rng.int(size);
    const out = buf[j]!;
    buf[j] = x;
    yield out;
  }
  yield* rng.shuffle(buf);
}

/** The key of the sample RNG for the record at `position` of an epoch. */
export function sampleRng(seed: number, mode: PipelineMode, epoch: number, position: number): Rng {
  return Rng.from(seed, mode, epoch, 'sample', position);
}

/**
 * Tokenises and preprocesses `records` (already checked), the i-th with `rngs[i]`.
 * Used by the pipeline and by callers that build their own batches (evaluation).
 */
export async function preprocessRecords(records: readonly K3mRecord[], tokenizer: K3mTokenizer, opts: ResolvedPreprocessOptions, rngs: readonly Rng[]): Promise<Sample[]> {
  const ids = await tokenizer.encodeBatch(records.flatMap((r) => [r.caption, knowledgeText(r.pv)]));
  return records.map((r, i) => preprocess(r, { title: ids[2 * i]!, pv: ids[2 * i + 1]! }, tokenizer, opts, rngs[i]!));
}

/**
 * One epoch of batches.
 * @example
 * for await (const batch of batches(reader.stream(), { tokenizer, batchSize: 8, epoch })) await step(batch);
 */
export async function* batches(records: AsyncIterable<K3mRecord> | Iterable<K3mRecord>, opts: PipelineOptions): AsyncGenerator<Batch> {
  const pre = resolvePreprocessOptions(opts);
  const B = opts.batchSize;
  const mode = opts.mode ?? 'train';
  const seed = opts.seed ?? 42;
  const epoch = opts.epoch ?? 0;
  const dropLast = opts.dropLast ?? true;
  const skip = opts.skipBatches ?? 0;
  const bufferSize = opts.shuffleBuffer ?? 5000;
  if (!Number.isInteger(B) || B < 1) throw new RangeError(`batchSize=${B}: must be an integer >= 1`);
  if (!(mode in PIPELINE_MODES)) throw new RangeError(`mode=${mode}: must be one of ${Object.keys(PIPELINE_MODES).join(', ')}`);
  const maxBatches = opts.maxBatches ?? Infinity;
  if (!Number.isInteger(skip) || skip < 0) throw new RangeError(`skipBatches=${skip}: must be an integer >= 0`);
  if (!(maxBatches >= 0)) throw new RangeError(`maxBatches=${maxBatches}: must be >= 0`);
  if (!Number.isInteger(bufferSize) || bufferSize < 0) throw new RangeError(`shuffleBuffer=${bufferSize}: must be an integer >= 0`);
  const rates = resolveCorruptionRates(opts.corruption);
  const noise = rates.noiseTitle + rates.noiseImage + rates.noiseKnowledge > 0;
  if (noise && B < 2) throw new RangeError(`batchSize=${B}: modality noise swaps within a batch and needs at least 2`);

  const ordered = mode === 'train' ? shuffleBuffer(records, bufferSize, Rng.from(seed, mode, epoch, 'shuffle')) : records;
  let batchIndex = 0;
  let position = 0;
  let group: K3mRecord[] = [];
  let positions: number[] = [];
  const flush = async (): Promise<Batch | null> => {
    const index = batchIndex++;
    const items = group;
    const at = positions;
    group = [];
    positions = [];
    if (index < skip) return null;
    let input = items;
    if (corrupts(rates)) {
      // A last partial batch of one has no other item to take noise from: it only gets dropped modalities.
      const r = items.length < 2 ? { ...rates, noiseTitle: 0, noiseImage: 0, noiseKnowledge: 0 } : rates;
      input = corruptRecords(items, r, Rng.from(seed, mode, epoch, 'corrupt', index)).records;
    }
    const rngs = at.map((p) => sampleRng(seed, mode, epoch, p));
    return collate(await preprocessRecords(input, opts.tokenizer, pre, rngs), pre);
  };
  if (maxBatches === 0) return;
  for await (const record of ordered) {
    const problem = recordProblem(record, pre);
    if (problem) {
      if (!opts.onReject) throw new RecordError(record.imageId, problem);
      opts.onReject(record, problem);
      continue;
    }
    group.push(record);
    positions.push(position++);
    if (group.length === B) {
      const batch = await flush();
      if (batch) yield batch;
      if (batchIndex >= maxBatches) return;
    }
  }
  if (group.length && !dropLast) {
    const batch = await flush();
    if (batch) yield batch;
  }
}

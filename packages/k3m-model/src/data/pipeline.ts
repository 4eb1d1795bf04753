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
import { Rng, type Ledger } from '@k3m-kit/core';
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
  /**
   * The smallest batch emitted (default 1). A trailing group smaller than this joins the batch
   * before it, so no record is dropped: training passes 2, since the structure loss pairs each
   * item with the next one. (The reference drops the last partial batch instead.)
   */
  minBatch?: number;
  /** Modality-missing/noise probabilities applied per batch, donors from the same batch. */
  corruption?: CorruptionRates;
  /** Batches of this epoch to pass over without preprocessing (resume). */
  skipBatches?: number;
  /** Stop after this many batches (counting skipped ones): an epoch of an endless stream, or a step limit. */
  maxBatches?: number;
  /** Called for a record that cannot become a sample; without it such a record throws. */
  onReject?: (record: K3mRecord, reason: string) => void;
  /** Called for every batch formed, skipped ones (resume) included, with its number of records. */
  onBatch?: (info: { index: number; size: number; skipped: boolean }) => void;
  /**
   * Counts this epoch: `read` for every record taken from `records`, `wrote` for the records of
   * every batch formed (skipped ones included), `rejected` for refused records, and `skipped`
   * for records still held when the consumer stops early (a step budget ending mid-epoch).
   */
  ledger?: Ledger;
}

/** Why records held in the pipeline when the consumer stopped were never trained on. */
export const STOPPED_EARLY = 'not reached: training stopped mid-epoch (step budget)';

/**
 * Fills a buffer of `size`, then emits a uniformly chosen buffered record for each new one;
 * the rest, shuffled, at the end. size <= 1 keeps the order.
 */
export async function* shuffleBuffer<T>(items: AsyncIterable<T> | Iterable<T>, size: number, rng: Rng, held?: { count: number }): AsyncGenerator<T> {
  const cap = Math.max(1, size);
  const buf: T[] = [];
  for await (const x of items) {
    if (buf.length < cap) {
      buf.push(x);
      if (held) held.count = buf.length;
      continue;
    }
    const j = rng.int(cap);
    const out = buf[j]!;
    buf[j] = x;
    yield out;
  }
  rng.shuffle(buf);
  while (buf.length) {
    const x = buf.pop()!;
    if (held) held.count = buf.length;
    yield x;
  }
}

async function* counted<T>(items: AsyncIterable<T> | Iterable<T>, ledger: Ledger | undefined): AsyncGenerator<T> {
  for await (const x of items) {
    ledger?.read();
    yield x;
  }
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
  const minBatch = opts.minBatch ?? 1;
  const skip = opts.skipBatches ?? 0;
  const bufferSize = opts.shuffleBuffer ?? 5000;
  if (!Number.isInteger(B) || B < 1) throw new RangeError(`batchSize=${B}: must be an integer >= 1`);
  if (!Number.isInteger(minBatch) || minBatch < 1 || minBatch > B) throw new RangeError(`minBatch=${minBatch}: must be an integer in [1, batchSize]`);
  if (!(mode in PIPELINE_MODES)) throw new RangeError(`mode=${mode}: must be one of ${Object.keys(PIPELINE_MODES).join(', ')}`);
  const maxBatches = opts.maxBatches ?? Infinity;
  if (!Number.isInteger(skip) || skip < 0) throw new RangeError(`skipBatches=${skip}: must be an integer >= 0`);
  if (!(maxBatches >= 0)) throw new RangeError(`maxBatches=${maxBatches}: must be >= 0`);
  if (!Number.isInteger(bufferSize) || bufferSize < 0) throw new RangeError(`shuffleBuffer=${bufferSize}: must be an integer >= 0`);
  const rates = resolveCorruptionRates(opts.corruption);
  const noise = rates.noiseTitle + rates.noiseImage + rates.noiseKnowledge > 0;
  if (noise && B < 2) throw new RangeError(`batchSize=${B}: modality noise swaps within a batch and needs at least 2`);

  const ledger = opts.ledger;
  const source = counted(records, ledger);
  const held = { count: 0 };
  const ordered = mode === 'train' ? shuffleBuffer(source, bufferSize, Rng.from(seed, mode, epoch, 'shuffle'), held) : source;
  let batchIndex = 0;
  let position = 0;
  let group: Group = { items: [], at: [] };
  // A full group waits for the next one, so a too-small trailing group can still join it.
  let pending: Group | undefined;
  const flush = async (g: Group): Promise<Batch | null> => {
    const index = batchIndex++;
    const skipped = index < skip;
    ledger?.wrote(g.items.length);
    opts.onBatch?.({ index, size: g.items.length, skipped });
    if (skipped) return null;
    let input = g.items;
    if (corrupts(rates)) {
      // A batch of one has no other item to take noise from: it only gets dropped modalities.
      const r = g.items.length < 2 ? { ...rates, noiseTitle: 0, noiseImage: 0, noiseKnowledge: 0 } : rates;
      input = corruptRecords(g.items, r, Rng.from(seed, mode, epoch, 'corrupt', index)).records;
    }
    const rngs = g.at.map((p) => sampleRng(seed, mode, epoch, p));
    return collate(await preprocessRecords(input, opts.tokenizer, pre, rngs), pre);
  };
  if (maxBatches === 0) return;
  try {
    yield* grouped();
  } finally {
    // Records pulled from the source but in no batch formed: the consumer stopped early.
    ledger?.skipped(STOPPED_EARLY, held.count + (pending?.items.length ?? 0) + group.items.length);
  }

  async function* grouped(): AsyncGenerator<Batch> {
    for await (const record of ordered) {
      const problem = recordProblem(record, pre);
      if (problem) {
        ledger?.rejected(problem);
        if (!opts.onReject) throw new RecordError(record.imageId, problem);
        opts.onReject(record, problem);
        continue;
      }
      group.items.push(record);
      group.at.push(position++);
      if (group.items.length < B) continue;
      if (pending) {
        const full = pending;
        pending = undefined;
        const batch = await flush(full);
        if (batch) yield batch;
        if (batchIndex >= maxBatches) return;
      }
      pending = group;
      group = { items: [], at: [] };
    }
    if (pending && group.items.length && group.items.length < minBatch) {
      pending.items.push(...group.items);
      pending.at.push(...group.at);
      group = { items: [], at: [] };
    }
    for (const g of [pending, group]) {
      if (!g || !g.items.length) continue;
      if (g === pending) pending = undefined;
      else group = { items: [], at: [] };
      const batch = await flush(g);
      if (batch) yield batch;
      if (batchIndex >= maxBatches) return;
    }
  }
}

interface Group {
  items: K3mRecord[];
  at: number[];
}

/**
 * Batches an epoch of `n` usable records forms: ceil(n / B), less one when a trailing group
 * smaller than `minBatch` joins the batch before it.
 */
export function batchCount(n: number, batchSize: number, minBatch = 1): number {
  const full = Math.floor(n / batchSize);
  const rest = n % batchSize;
  return full + (rest === 0 ? 0 : rest < minBatch && full > 0 ? 0 : 1);
}

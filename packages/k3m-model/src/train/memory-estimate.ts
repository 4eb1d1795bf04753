/**
 * @file How much memory training a config needs, estimated from its sizes before anything is
 * allocated, so a config that cannot fit stops with a usage error (exit 2) instead of the wasm
 * back end aborting with a dump of minified emscripten code.
 *
 * Where the memory is (data-parallel training, src/train/shared-training.ts):
 * - each worker's back end (on wasm: its own heap of at most 4 GiB) holds a copy of the weights,
 *   the gradients of each of its shares and the activations of its shares of the batch;
 * - shared memory holds the master weights, AdamW's two moments, the step's gradient and a
 *   gradient arena per worker but the first.
 *
 * Activations are counted per item from the model's token streams (four text streams stacked, two
 * image streams, the three co-attention pairs, the heads on the labelled rows). The factors are
 * fitted to the wasm heap a worker reaches (it grows in steps and never shrinks), for each kind
 * of kernels ({@link FIT}).
 */
import { freemem, totalmem } from 'node:os';
import { UsageError } from '@k3m-kit/core';
import { blasStatus } from '@k3m-kit/core/backend';
import type { ModelConfig } from '../model/config.ts';
import { countParameters, parameterSpec } from '../model/params.ts';
import { sharesIn } from './batch-share.ts';
import { sharedBytes } from './shared-training.ts';

/** The reference batch geometry (k3m-reference.md 3.4): title, knowledge, regions + the global row. */
const TITLE = 36;
const PV = 48;
const REGIONS = 37;
/** Upper bounds of labelled rows per item: 15% of the title, half the knowledge (values), masked regions. */
const MLM_ROWS = 0.15 * TITLE + 0.5 * PV;
const MOM_ROWS = 0.15 * (REGIONS - 1);
/** Floats kept per token for a layer of width d and FFN width i (inputs, outputs, LayerNorm and GELU parts, dropout masks, their gradients), and per attention-map entry. */
const PER_WIDTH = 48;
const PER_FFN = 14;
const PER_MAP = 12;
/** Floats per (labelled row × class) of a head: logits, softmax, one-hot, their gradients. */
const PER_CLASS = 14;
/**
 * The wasm heap's kernels: `blas` when its matmuls and convolutions run on the machine's BLAS
 * (@k3m-kit/core's blas.ts), `xnnpack` for wasm's own, which need explicit transposes (more
 * weight-sized temporaries).
 */
export type WasmKernels = 'blas' | 'xnnpack';

/**
 * Fitted per kernel kind: heap per byte of activations counted above (allocator slack; the heap
 * keeps growing over the first steps), heap per byte of weights for gradients and the backward
 * pass's weight-sized temporaries, and per byte of the word-embedding table for its gradient's
 * parts (a segment sum per text stream, the tied decoder's). `xnnpack`: k3m-small 0.36 / 1.0 GiB
 * for shares of 2 / 8 items, k3m-medium 2.1 / 2.6 / 3.9 GiB for 1 / 2 / 4. `blas` (2026-11-30):
 * k3m-small 0.291 / 0.792 GiB for 2 / 8, k3m-medium 1.527 / 1.998 / 2.941 GiB for 1 / 2 / 4.
 */
const FIT: Record<WasmKernels, { slack: number; gradientWork: number; embeddingWork: number }> = {
  xnnpack: { slack: 1.35, gradientWork: 2.3, embeddingWork: 5.7 },
  blas: { slack: 0.93, gradientWork: 0.9, embeddingWork: 7.6 },
};

/** The kernels a wasm heap of this machine runs: `blas` when a BLAS loads. */
export const wasmKernels = (): WasmKernels => (blasStatus().blas ? 'blas' : 'xnnpack');

/** wasm32's address space: each worker's heap. */
export const WASM_HEAP_LIMIT = 4 * 2 ** 30;

export interface MemoryEstimate {
  parameters: number;
  /** Items per worker (its shares of a batch). */
  share: number;
  /** Bytes in one worker's back end: weights, gradients, activations. */
  worker: { weights: number; gradients: number; activations: number; total: number };
  /** Bytes of shared memory (master weights, moments, gradient arenas). */
  shared: number;
  /** Everything: all workers and the shared memory. */
  total: number;
}

/** Activation bytes of one item on the back end (see the file header). */
function activationsPerItem(c: ModelConfig): number {
  const layer = (tokens: number, d: number, ffn: number, heads: number, len: number) => tokens * (PER_WIDTH * d + PER_FFN * ffn + PER_MAP * heads * len);
  const L = Math.max(TITLE, PV);
  const text = c.num_hidden_layers * layer(4 * L, c.hidden_size, c.intermediate_size, c.num_attention_heads, L);
  const image = c.v_num_hidden_layers * layer(2 * REGIONS, c.v_hidden_size, c.v_intermediate_size, c.v_num_attention_heads, REGIONS);
  const pairs = [
    [REGIONS, TITLE],
    [REGIONS, PV],
    [PV, TITLE],
  ];
  const co = c.t_biattention_id.length * pairs.reduce((n, [a, b]) => n + layer(a! + b!, Math.max(c.hidden_size, c.v_hidden_size, c.bi_hidden_size), c.intermediate_size, c.bi_num_attention_heads, Math.max(a!, b!)), 0);
  const heads = PER_CLASS * (MLM_ROWS * c.vocab_size + MOM_ROWS * c.v_target_size);
  const inputs = 3 * REGIONS * c.v_feature_size;
  return 4 * (text + image + co + heads + inputs);
}

/**
 * The memory training `config` needs at `batchSize` items per micro-batch, cut into `shares`
 * shares, over `workers` workers, with the wasm heap's `kernels` (default: this machine's).
 * @example estimateTrainingMemory(modelConfig('k3m-base'), 8, 2).worker.total // > 4 GiB
 */
export function estimateTrainingMemory(config: ModelConfig, batchSize: number, workers: number, shares = workers, kernels: WasmKernels = wasmKernels()): MemoryEstimate {
  const fit = FIT[kernels];
  const parameters = countParameters(config);
  const parts = sharesIn(batchSize, shares);
  const used = Math.min(workers, parts);
  // A worker runs its shares of a micro-batch in one pass, each with its own gradients.
  const perWorker = Math.ceil(parts / used);
  const share = perWorker * Math.ceil(batchSize / parts);
  const weights = 4 * parameters;
  // variableGrads holds every gradient at once, next to the backward pass's temporaries.
  const gradients = (fit.gradientWork + perWorker - 1) * weights + fit.embeddingWork * 4 * config.vocab_size * config.hidden_size;
  const activations = fit.slack * share * activationsPerItem(config);
  const worker = { weights, gradients, activations, total: weights + gradients + activations };
  const shared = sharedBytes(parameters, parameterSpec(config).length, config.hidden_size, workers, parts);
  return { parameters, share, worker, shared, total: used * worker.total + shared };
}

const GB = (b: number) => `${(b / 2 ** 30).toFixed(1)} GiB`;

/**
 * Throws a {@link UsageError} (exit 2) naming the config, the estimate, the limit and what to
 * do, when training `config` cannot fit: a wasm worker's heap over 4 GiB, or everything over the
 * machine's memory.
 */
export function checkTrainingMemory(config: ModelConfig, o: { name: string; backend: string; batchSize: number; workers: number; shares?: number; kernels?: WasmKernels }): MemoryEstimate {
  const e = estimateTrainingMemory(config, o.batchSize, o.workers, o.shares, o.kernels);
  const what = `${o.name} (${(e.parameters / 1e6).toFixed(1)} M parameters) at --batch-size ${o.batchSize} on ${o.workers} worker${o.workers > 1 ? 's' : ''}`;
  if (o.backend === 'wasm' && e.worker.total > WASM_HEAP_LIMIT) {
    const fixed = e.worker.weights + e.worker.gradients;
    const smaller = 'train a smaller config (e.g. --preset k3m-medium) or use --backend tensorflow';
    const todo =
      fixed > WASM_HEAP_LIMIT
        ? `weights and gradients alone exceed it: ${smaller}`
        : fixed + e.worker.activations / e.share > WASM_HEAP_LIMIT
          ? `even a share of one item exceeds it: ${smaller}`
          : 'lower --batch-size (with --accumulate to keep the batch) or add --shares and --workers (each worker has its own heap), or use --backend tensorflow';
    throw new UsageError(
      `${what} needs about ${GB(e.worker.total)} in each wasm worker's heap (weights ${GB(e.worker.weights)}, gradients ${GB(e.worker.gradients)}, activations of ${e.share} items ${GB(e.worker.activations)}); wasm's limit is 4 GiB per heap: ${todo}`,
    );
  }
  const limit = totalmem();
  if (e.total > limit) {
    throw new UsageError(`${what} needs about ${GB(e.total)} (${GB(e.shared)} shared, ${GB(e.worker.total)} per worker); this machine has ${GB(limit)} (${GB(freemem())} free): lower --batch-size or --workers, or train a smaller config`);
  }
  return e;
}

/**
 * @file How much memory training a config needs, estimated from its sizes before anything is
 * allocated, so a config that cannot fit stops with a usage error (exit 2) instead of the wasm
 * back end aborting with a dump of minified emscripten code.
 *
 * Where the memory is (data-parallel training, src/train/shared-training.ts):
 * - each worker's back end (on wasm: its own heap of at most 4 GiB) holds a copy of the weights,
 *   the gradients of each of its shares and the activations of its shares of the batch;
 * - shared memory holds AdamW's two moments and the step's gradient (between steps, the
 *   weights), whatever the number of workers.
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
 * Fitted per kernel kind to the heap one worker reaches over a few steps on the trainer's backward
 * pass (`frugalGradients`, ops/gradients.ts), which frees saved activations as gradients arrive:
 * its peak holds the weights, the word-embedding table's gradient parts (`embeddingWork` per byte
 * of the table), and the larger of every weight's gradient (`gradientWork` per byte of weights)
 * and the activations still held (`held` per byte counted above), plus the part of the activations
 * that lives next to both (`kept`). Fitted never to fall short of a measurement, with 2% to spare
 * (`npx tsx tools/bench/train-heap.ts <preset> <items>`, 2026-12-01, after the shape-only saves of
 * ops/shape-saves.ts; at most 13% over): `blas`: k3m-small 0.117 / 0.242 GiB for 2 / 8 items;
 * k3m-medium 0.946 / 1.021 / 1.141 / 1.445 / 2.305 GiB for 1 / 2 / 4 / 8 / 16, 32 out of memory;
 * k3m-base 3.603 / 3.711 / 3.829 / 3.768 / 3.930 GiB for 1 / 2 / 3 / 4 / 6, 8 out of memory.
 * `xnnpack` (explicit transposes: more weight-sized temporaries): k3m-small 0.140 / 0.291;
 * k3m-medium 1.429 / 1.341 / 1.459 / 1.755 / 2.668, 32 out of memory.
 */
const FIT: Record<WasmKernels, { gradientWork: number; embeddingWork: number; held: number; kept: number }> = {
  xnnpack: { gradientWork: 1.95, embeddingWork: 7, held: 0.255, kept: 0.04 },
  blas: { gradientWork: 0.85, embeddingWork: 6.25, held: 0.13, kept: 0.1 },
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
  /** Bytes of shared memory (moments, the step's gradient). */
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
  const embedding = fit.embeddingWork * 4 * config.vocab_size * config.hidden_size;
  const paramGradients = (fit.gradientWork + perWorker - 1) * weights;
  const perItem = share * activationsPerItem(config);
  const held = fit.held * perItem;
  const kept = fit.kept * perItem;
  const worker = { weights, gradients: paramGradients + embedding, activations: held + kept, total: weights + embedding + Math.max(paramGradients, held) + kept };
  const shared = sharedBytes(parameters, parameterSpec(config).length, config.hidden_size, parts);
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
        : estimateTrainingMemory(config, 1, 1, 1, o.kernels).worker.total > WASM_HEAP_LIMIT
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

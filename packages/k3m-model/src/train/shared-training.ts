/**
 * @file The shared memory of data-parallel training, one `SharedArrayBuffer` per part, handed to
 * every worker at start-up:
 *
 *   m, v, steps AdamW's moments and per-tensor update counts (the one optimizer's state)
 *   grads       the step's gradient: every share of every micro-batch added in order; between
 *               steps, the weights (below)
 *   done        per tensor: shares added to it so far (a counter over the run); share k of a
 *               micro-batch adds when it reads `base + k`, then sets `base + k + 1`
 *   hasGrad     per tensor: 1 when it got a gradient this step
 *   norms       Σg² per fixed chunk of the elements (global-norm clipping)
 *   exchange    per share: its first item's c_initial (forward), then that row's gradient from
 *               the share before it (backward): the structure loss's negatives across shares
 *   control     the abort word and two barriers (the update; the shares' exchange)
 *
 * Gradients and moments live here, outside the workers' 4 GiB wasm heaps: a worker's heap holds
 * its copy of the weights, one share's gradients and its activations.
 *
 * There is no master copy of the weights: the workers' copies are the weights, identical in
 * every worker. `grads` carries them where they must be shared. It starts as the initial weights
 * (the workers load them); a step's gradient then overwrites the tensors it reaches, each
 * tensor's first share copying instead of adding; the update reads each tensor's current values
 * from the worker's own copy and writes the new ones over the gradient, and every worker loads
 * them. So between steps `grads` holds every weight: updated ones where the step had a gradient,
 * unchanged ones elsewhere ({@link sharedWeights}; the coordinator's checkpoints read it there).
 * One weight-sized array fewer than a master copy beside the step's gradient (for k3m-medium,
 * 0.42 GB); and since the shares add in turn (`done`), none per worker for its share either.
 */
import { ArenaLayout, ParamArena, sharedFloats } from '../model/param-arena.ts';
import type { ModelConfig } from '../model/config.ts';
import { AdamState } from './adamw.ts';
import { BARRIER_WORDS } from './shared-barrier.ts';

/** Everything the workers share (structured-cloneable: SharedArrayBuffers travel by reference). */
export interface SharedTraining {
  config: ModelConfig;
  workers: number;
  /** Shares each micro-batch is cut into (at most; fewer when it has fewer items). */
  shares: number;
  m: Float32Array;
  v: Float32Array;
  steps: Int32Array;
  grads: Float32Array;
  done: Int32Array;
  hasGrad: Uint8Array;
  norms: Float64Array;
  exchange: Float32Array;
  control: Int32Array;
}

/** Elements per chunk of Σg²: a fixed partition, so the global norm is the same sum on any number of workers. */
export const NORM_CHUNK = 1 << 16;
export const normChunks = (elements: number): number => Math.ceil(elements / NORM_CHUNK);

/** Word offsets in `control`. */
export const CONTROL = Object.freeze({ abort: 0, stepBarrier: 1, exchangeBarrier: 1 + BARRIER_WORDS, words: 1 + 2 * BARRIER_WORDS });

/**
 * Shared memory for `workers` workers and `shares` shares over `params` and `adam` (used in place
 * when already shared, else copied). `params`' memory becomes the step's gradient and, between
 * steps, the weights ({@link sharedWeights}): read the trained weights from it between steps.
 */
export function createSharedTraining(params: ParamArena, adam: AdamState, workers: number, shares = workers): SharedTraining {
  const layout = params.layout;
  const n = layout.total;
  const tensors = layout.slots.length;
  return {
    config: layout.config,
    workers,
    shares,
    m: asShared(adam.m),
    v: asShared(adam.v),
    steps: adam.steps,
    grads: asShared(params.data),
    done: new Int32Array(new SharedArrayBuffer(4 * tensors)),
    hasGrad: new Uint8Array(new SharedArrayBuffer(tensors)),
    norms: new Float64Array(new SharedArrayBuffer(8 * normChunks(n))),
    exchange: sharedFloats(2 * shares * layout.config.hidden_size),
    control: new Int32Array(new SharedArrayBuffer(4 * CONTROL.words)),
  };
}

function asShared(a: Float32Array): Float32Array {
  if (a.buffer instanceof SharedArrayBuffer) return a;
  const s = sharedFloats(a.length);
  s.set(a);
  return s;
}

/**
 * The weights as an arena (a view of `grads`, no copy): valid before the first micro-batch and
 * after each update, not between a micro-batch and its step's update (the gradient is there then).
 */
export const sharedWeights = (s: SharedTraining): ParamArena => new ParamArena(new ArenaLayout(s.config), s.grads);

/** A copy of the step's gradient (after its micro-batches, before the update), zero where no share reached a tensor. */
export function stepGradient(s: SharedTraining): Float32Array {
  const out = Float32Array.from(s.grads);
  for (const slot of new ArenaLayout(s.config).slots) if (!s.hasGrad[slot.index]) out.fill(0, slot.offset, slot.offset + slot.size);
  return out;
}

/** The optimizer state as an {@link AdamState} over the shared moments (views, no copy). */
export const sharedAdam = (s: SharedTraining): AdamState => new AdamState(new ArenaLayout(s.config), s.m, s.v, s.steps);

/** Worker `w`'s share of the elements for the update: `[from, to)`. */
export function updateRange(total: number, workers: number, w: number): [number, number] {
  return [Math.floor((total * w) / workers), Math.floor((total * (w + 1)) / workers)];
}

/** Shared memory bytes (what {@link createSharedTraining} allocates, AdamW's update counts included): the same on any number of workers. */
export function sharedBytes(parameters: number, tensors: number, hidden: number, shares: number): number {
  // grads, m, v; done and steps (int32) and hasGrad (bytes) per tensor
  return 4 * parameters * 3 + 9 * tensors + 8 * normChunks(parameters) + 8 * shares * hidden + 4 * CONTROL.words;
}

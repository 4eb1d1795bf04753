/**
 * @file One data-parallel training worker (a worker thread with its own TensorFlow.js back end),
 * started by {@link WorkerPool} through `train-worker.js`. It holds a copy of the weights as
 * variables and answers three requests:
 *
 *   micro     one forward and backward pass over all its shares of a micro-batch, each share on
 *             its own copy of the weights (so each has its own gradient, whichever worker runs it
 *             with whichever others), the shares' first c_initial rows swapped through shared
 *             memory between the encoders and the structure loss (their gradients on the way
 *             back); each share adds its gradient of each tensor to the step's gradient in its
 *             turn, after every earlier share of the step has added there (a counter per tensor
 *             in shared memory), so the sum is made in share order whichever worker adds; the
 *             first share's gradient goes in as the backward pass makes it
 *   apply     the AdamW update of its range of the elements, optionally after clipping by the
 *             global norm (Σg² in fixed chunks, added in chunk order after a barrier); after a
 *             barrier, reload the weights
 *   validate  losses and accuracies of a whole validation batch (no sharing)
 *
 * Any failure sets the shared abort word (so no other worker waits for this one forever) and is
 * answered with the error's message and stack.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { addFloats, ownsMemory, wasmView } from '@k3m-kit/core/backend';
import { startBackend } from '../backend.ts';
import type { Batch } from '../data/batch.ts';
import { forward, startForward, type AccuracyCounts, type BatchShare, type FusionMode, type LossName, type LossWeights, type ModelFixes } from '../model/k3m.ts';
import type { ArenaSlot } from '../model/param-arena.ts';
import { K3mParams, tensorParams } from '../model/params.ts';
import { customOp } from '../ops/custom-grad.ts';
import { frugalGradients, type GradientSink } from '../ops/gradients.ts';
import { ItemStreams } from '../ops/nn.ts';
import { adamwUpdateFrom, clipFactor, sumOfSquares, type ParamReader } from './adamw.ts';
import { abortAll, BARRIER_WORDS, SharedBarrier, waitForWord, WorkerAborted } from './shared-barrier.ts';
import { CONTROL, NORM_CHUNK, normChunks, sharedAdam, sharedWeights, updateRange, type SharedTraining } from './shared-training.ts';
import { lossValues } from './validate.ts';

/** `workerData` of a training worker. */
export interface WorkerInit {
  index: number;
  backend: string;
  shared: SharedTraining;
  fusionMode: FusionMode;
  fixes: ModelFixes;
  weights: LossWeights;
}

/** One share of a micro-batch: its items as a batch, their indices in the micro-batch, and the share's index. */
export interface ShareJob {
  batch: Batch;
  items: number[];
  index: number;
}

/** Requests, each answered by a message of the same `type` and `id` (or `error`). */
export type ToWorker =
  | {
      type: 'micro';
      id: number;
      /** This worker's shares, one per round (none in a round when the shares run out). */
      shares: ShareJob[];
      /** Shares of the whole micro-batch. */
      parts: number;
      /** Key of the micro-batch's random streams. */
      key: number;
      /** Shares added to step gradients before this micro-batch's (its share k takes turn base + k). */
      base: number;
      /** The whole micro-batch's counts when it is cut into shares. */
      counts?: BatchShare['counts'];
      /** First micro-batch of an optimizer step: no tensor of the step's gradient is written yet (hasGrad reset). */
      fresh: boolean;
    }
  | { type: 'apply'; id: number; lr: number; scale: number; clip?: number }
  | { type: 'validate'; id: number; batch: Batch };

export type LossParts = Partial<Record<LossName, number>>;

export type FromWorker =
  | { type: 'ready' }
  | { type: 'micro'; id: number; shares: { loss: number; losses: LossParts }[] }
  | { type: 'apply'; id: number; norm?: number }
  | { type: 'validate'; id: number; losses: LossParts; accuracy: AccuracyCounts }
  | { type: 'error'; id?: number; message: string; stack?: string; /** it stopped because another thread aborted */ aborted: boolean };

const init = workerData as WorkerInit;
const port = parentPort!;
const s = init.shared;
const W = s.workers;
const me = init.index;
const adam = sharedAdam(s);
const slots = adam.layout.slots;
const abortWord = s.control.subarray(CONTROL.abort, CONTROL.abort + 1);
const barrierWords = (at: number) => s.control.subarray(at, at + BARRIER_WORDS);
const stepBarrier = new SharedBarrier(barrierWords(CONTROL.stepBarrier), abortWord);
const exchangeBarrier = new SharedBarrier(barrierWords(CONTROL.exchangeBarrier), abortWord);
let model: K3mParams;
let vars: tf.Variable[];

/** This worker's range of the elements in the update. */
const myRange = (): [number, number] => updateRange(adam.layout.total, W, me);

/**
 * The structure loss's negatives across shares: each of this worker's shares `mine` publishes its
 * first item's c_initial and gets the next share's (the last share the first's); on the way back
 * each sends that row's gradient to the share it came from. Every worker takes part in both
 * barriers, with or without shares.
 */
function exchangeOp(mine: readonly number[], parts: number): (firsts: tf.Tensor) => tf.Tensor {
  const H = s.config.hidden_size;
  const rows = s.exchange.subarray(0, s.shares * H);
  const back = s.exchange.subarray(s.shares * H, 2 * s.shares * H);
  const next = (k: number) => (k + 1) % parts;
  return customOp<[tf.Tensor]>((firsts) => {
    const f = firsts.dataSync() as Float32Array;
    mine.forEach((k, i) => rows.set(f.subarray(i * H, (i + 1) * H), k * H));
    exchangeBarrier.wait(W);
    const value = new Float32Array(mine.length * H);
    mine.forEach((k, i) => value.set(rows.subarray(next(k) * H, (next(k) + 1) * H), i * H));
    return {
      value: tf.tensor(value, [mine.length, H]),
      gradFunc: (dy) => {
        const d = dy.dataSync() as Float32Array;
        mine.forEach((k, i) => back.set(d.subarray(i * H, (i + 1) * H), next(k) * H));
        exchangeBarrier.wait(W);
        const g = new Float32Array(mine.length * H);
        mine.forEach((k, i) => g.set(back.subarray(k * H, (k + 1) * H), i * H));
        return [tf.tensor(g, [mine.length, H])];
      },
    };
  });
}

/** Whether this micro-batch's shares swap rows (the structure loss is on and there is more than one share). */
const exchanges = (parts: number) => parts > 1 && init.weights.tri !== 0;

function micro(m: Extract<ToWorker, { type: 'micro' }>): FromWorker {
  // The step's gradient is not cleared (between steps it holds the weights): a tensor's first
  // share copies into it, later ones add, and hasGrad says which tensors a share has written
  // this step. Worker 0 resets it before share 0 takes its turns, which every other share waits for.
  if (m.fresh && me === 0) s.hasGrad.fill(0);
  const first = m.shares[0];
  const turns = first && new ShareTurns(m.base, first.index, first.index === 0 && m.fresh);
  const done = turns ? sharesGradients(m, turns.sink) : undefined;
  if (!done && exchanges(m.parts)) {
    exchangeBarrier.wait(W);
    exchangeBarrier.wait(W);
  }
  try {
    // Every share adds every tensor in its turn: the first share what the backward pass left
    // waiting, the others all of theirs (held in this worker's heap until then).
    turns?.finish();
    for (let r = 1; r < m.shares.length; r++) {
      const grads = done!.grads.slice(r * slots.length, (r + 1) * slots.length);
      const k = m.shares[r]!.index;
      for (const slot of slots) {
        waitTurn(slot.index, m.base, k);
        const g = grads[slot.index];
        addShare(slot, g ? (wasmView(g) ?? (g.dataSync() as Float32Array)) : undefined, m.base, k);
      }
    }
  } finally {
    for (const g of done?.grads ?? []) g?.dispose();
  }
  return { type: 'micro', id: m.id, shares: done?.results ?? [] };
}

/** `done[t]` when share `k` of the micro-batch whose shares start at `base` has its turn at tensor t. */
const turnOf = (base: number, k: number) => (base + k) | 0;
const hasTurn = (t: number, base: number, k: number) => Atomics.load(s.done, t) === turnOf(base, k);

/** Blocks until share `k` has its turn at tensor `t` (every earlier share has added its gradient there). */
function waitTurn(t: number, base: number, k: number): void {
  waitForWord(s.done, t, turnOf(base, k), abortWord);
}

/** Gives share `k`'s turn at tensor `t` to the next share. */
function passTurn(t: number, base: number, k: number): void {
  Atomics.store(s.done, t, turnOf(base, k + 1));
  Atomics.notify(s.done, t);
}

/**
 * Share `k`'s gradient of one tensor (none: the share did not reach it) into the step's gradient
 * in its turn, copied when no share wrote the tensor this step, else added; then the next
 * share's turn.
 */
function addShare(slot: ArenaSlot, d: Float32Array | undefined, base: number, k: number): void {
  if (d) {
    const o = slot.offset;
    if (!s.hasGrad[slot.index]) s.grads.set(d, o);
    else addFloats(s.grads.subarray(o, o + slot.size), d);
    s.hasGrad[slot.index] = 1;
  }
  passTurn(slot.index, base, k);
}

/**
 * Buffers this worker reuses from step to step for gradients that wait outside the heap: the
 * sums of gradients of several parts (the word embedding's lookups and tied decoder, ...), and
 * the rare one-part gradient whose turn could not be waited for. Fresh arrays every step would be
 * garbage the size of the gradient.
 */
const sumBuffers = new Map<number, Float32Array>();
const waitBuffers = new Map<number, Float32Array>();
const bufferOf = (pool: Map<number, Float32Array>, slot: ArenaSlot): Float32Array => {
  let b = pool.get(slot.index);
  if (!b) pool.set(slot.index, (b = new Float32Array(slot.size)));
  return b;
};

/**
 * The sink of a worker's first share: its gradient leaves the wasm heap as the backward pass
 * makes it (a heap keeps its high-water mark). A gradient of one part goes in when its turn
 * comes: the sink waits for it, as the workers run the same backward pass nearly in step. A
 * gradient of several parts is summed outside the heap first (float32, in the engine's order, as
 * the engine would) and goes in with its last part. The sink does not wait while another worker
 * waits at the structure loss's exchange (that worker cannot add before this one gets there):
 * then the gradient waits outside the heap for a later part or {@link ShareTurns.finish}. Share 0
 * of a fresh step goes first everywhere and writes its parts straight into the step's gradient.
 */
class ShareTurns {
  private readonly waiting = new Map<number, Float32Array>();
  private readonly added = new Uint8Array(slots.length);

  constructor(
    private readonly base: number,
    private readonly k: number,
    /** Share 0 of a fresh step: no share writes before it, and hasGrad is all 0. */
    private readonly direct: boolean,
  ) {}

  readonly sink: GradientSink = (j, dx, first, last) => {
    const slot = slots[j];
    if (!slot) return false; // another share's leaf: the tensor path
    const t = slot.index;
    const d = wasmView(dx) ?? (dx.dataSync() as Float32Array);
    if (this.direct) {
      if (first) s.grads.set(d, slot.offset);
      else addFloats(s.grads.subarray(slot.offset, slot.offset + slot.size), d);
      if (last) {
        s.hasGrad[t] = 1;
        passTurn(t, this.base, this.k);
        this.added[t] = 1;
      }
      return true;
    }
    let complete = d;
    if (!(first && last)) {
      const sum = bufferOf(sumBuffers, slot);
      if (first) sum.set(d);
      else addFloats(sum, d);
      if (!last) return true;
      complete = sum;
    }
    this.flush();
    if (this.awaitTurn(t)) {
      addShare(slot, complete, this.base, this.k);
      this.added[t] = 1;
    } else if (complete === d) {
      const copy = bufferOf(waitBuffers, slot);
      copy.set(d);
      this.waiting.set(t, copy);
    } else this.waiting.set(t, complete);
    return true;
  };

  /** After the backward pass: every tensor not yet added, in its turn (a waiting sum, or nothing where the share did not reach). */
  finish(): void {
    for (const slot of slots) {
      const t = slot.index;
      if (this.added[t]) continue;
      if (this.direct) passTurn(t, this.base, this.k);
      else {
        waitTurn(t, this.base, this.k);
        addShare(slot, this.waiting.get(t), this.base, this.k);
      }
    }
    this.waiting.clear();
  }

  /** Waits for this share's turn at tensor `t` unless another worker is waiting at the exchange; false when it gave up. */
  private awaitTurn(t: number): boolean {
    return waitForWord(s.done, t, turnOf(this.base, this.k), abortWord, { pollMs: 1, giveUp: () => exchangeBarrier.occupied() });
  }

  /** Adds the waiting gradients whose turn has come. */
  private flush(): void {
    for (const [t, sum] of this.waiting) {
      if (!hasTurn(t, this.base, this.k)) continue;
      addShare(slots[t]!, sum, this.base, this.k);
      this.waiting.delete(t);
      this.added[t] = 1;
    }
  }
}

/**
 * Forward and backward of all this worker's shares in one pass, each share on its own copy of the
 * weights: returns each share's losses and its gradients (share by share, slot by slot; null
 * where a share did not reach a tensor).
 */
function sharesGradients(m: Extract<ToWorker, { type: 'micro' }>, sink?: GradientSink): { results: { loss: number; losses: LossParts }[]; grads: (tf.Tensor | null)[] } {
  const share: BatchShare | undefined = m.counts ? { counts: m.counts } : undefined;
  const copies = m.shares.map(() => vars.map((v) => tf.clone(v)));
  const results: { loss: number; losses: LossParts }[] = [];
  try {
    const { value, grads } = frugalGradients(
      () => {
        const started = m.shares.map((job, i) =>
          startForward(tensorParams(s.config, new Map(slots.map((x, j) => [x.name, copies[i]![j]!]))), job.batch, {
            fusionMode: init.fusionMode,
            training: true,
            rng: ItemStreams.of(m.key, job.items),
            fixes: init.fixes,
            weights: init.weights,
            share,
          }),
        );
        let nexts: (tf.Tensor | undefined)[] = started.map(() => undefined);
        if (exchanges(m.parts)) {
          const swapped = exchangeOp(
            m.shares.map((j) => j.index),
            m.parts,
          )(tf.concat(started.map((x) => x.first!), 0));
          nexts = started.map((_, i) => tf.slice(swapped, i, 1));
        }
        let total: tf.Scalar | undefined;
        started.forEach((x, i) => {
          const r = x.finish(nexts[i]);
          results.push({ loss: r.loss!.dataSync()[0]!, losses: lossValues(r.losses) });
          total = total ? (tf.add(total, r.loss!) as tf.Scalar) : r.loss!;
        });
        return total!;
      },
      copies.flat(),
      sink,
    );
    value.dispose();
    return { results, grads: grads.map((g) => g ?? null) };
  } finally {
    for (const c of copies) for (const t of c) t.dispose();
  }
}

function apply(m: Extract<ToWorker, { type: 'apply' }>): FromWorker {
  const [from, to] = myRange();
  const total = adam.layout.total;
  const has = s.hasGrad;
  let scale = m.scale;
  let norm: number | undefined;
  if (m.clip !== undefined) {
    const chunks = normChunks(total);
    const [c0, c1] = updateRange(chunks, W, me);
    for (let c = c0; c < c1; c++) s.norms[c] = sumOfSquares(s.grads, adam.layout, has, c * NORM_CHUNK, Math.min(total, (c + 1) * NORM_CHUNK));
    stepBarrier.wait(W);
    let sq = 0;
    for (let c = 0; c < chunks; c++) sq += s.norms[c]!;
    norm = Math.sqrt(sq) * scale;
    scale *= clipFactor(norm, m.clip);
  }
  // Each weight's current values from this worker's own copy (all copies are the same); the
  // new ones over the gradient, which the update has read by then, element by element.
  const current: ParamReader = (slot) => [wasmView(vars[slot.index]!) ?? (vars[slot.index]!.dataSync() as Float32Array), 0];
  adamwUpdateFrom(current, s.grads, adam, { grads: s.grads, scale, hasGrad: has, lr: m.lr }, from, to);
  stepBarrier.wait(W);
  tf.tidy(() => {
    for (const slot of slots) {
      if (!has[slot.index]) continue;
      const v = vars[slot.index]!;
      const updated = s.grads.subarray(slot.offset, slot.offset + slot.size);
      // In place where no other tensor shares the weight's memory (the step's clones are gone).
      const view = ownsMemory(v) ? wasmView(v) : undefined;
      if (view) view.set(updated);
      else v.assign(tf.tensor(updated, slot.shape));
    }
  });
  return { type: 'apply', id: m.id, norm };
}

function validateBatch(m: Extract<ToWorker, { type: 'validate' }>): FromWorker {
  let out: FromWorker | undefined;
  tf.tidy(() => {
    const r = forward(model, m.batch, { fusionMode: init.fusionMode, gumbel: 'argmax', fixes: init.fixes, weights: init.weights, accuracy: true });
    out = { type: 'validate', id: m.id, losses: lossValues(r.losses), accuracy: r.accuracy! };
  });
  return out!;
}

function fail(e: unknown, id?: number): void {
  abortAll(abortWord, [barrierWords(CONTROL.stepBarrier), barrierWords(CONTROL.exchangeBarrier)]);
  const err = e as Error;
  port.postMessage({ type: 'error', id, message: err?.message ?? String(e), stack: err?.stack, aborted: e instanceof WorkerAborted } satisfies FromWorker);
}

try {
  await startBackend(init.backend);
  // The initial weights (or a checkpoint's) are in the shared gradient's memory until the first micro-batch.
  const initial = sharedWeights(s);
  model = K3mParams.fromValues(s.config, (n) => initial.view(n));
  vars = slots.map((x) => model.get(x.name));
  port.on('message', (m: ToWorker) => {
    try {
      port.postMessage(m.type === 'micro' ? micro(m) : m.type === 'apply' ? apply(m) : validateBatch(m));
    } catch (e) {
      fail(e, m.id);
    }
  });
  port.postMessage({ type: 'ready' } satisfies FromWorker);
} catch (e) {
  fail(e);
}

/**
 * @file One data-parallel training worker (a worker thread with its own TensorFlow.js back end),
 * started by {@link WorkerPool} through `train-worker.js`. It holds a copy of the weights as
 * variables and answers three requests:
 *
 *   micro     one forward and backward pass over all its shares of a micro-batch, each share on
 *             its own copy of the weights (so each has its own gradient, whichever worker runs it
 *             with whichever others), the shares' first c_initial rows swapped through shared
 *             memory between the encoders and the structure loss (their gradients on the way
 *             back); then, round by round, every worker writes one share's gradient to its arena
 *             and after a barrier adds the round's arenas, in share order, to the step's gradient
 *             over its range of the elements (cleared on the step's first micro-batch)
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
import { K3mParams, tensorParams } from '../model/params.ts';
import { customOp } from '../ops/custom-grad.ts';
import { frugalGradients, type GradientSink } from '../ops/gradients.ts';
import { ItemStreams } from '../ops/nn.ts';
import { adamwUpdateFrom, clipFactor, sumOfSquares, type ParamReader } from './adamw.ts';
import { abortAll, BARRIER_WORDS, SharedBarrier, WorkerAborted } from './shared-barrier.ts';
import { CONTROL, gradSlot, NORM_CHUNK, normChunks, sharedAdam, sharedWeights, updateRange, type SharedTraining } from './shared-training.ts';
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
      /** Rounds of this micro-batch (every worker takes part in each, to add up). */
      rounds: number;
      /** The whole micro-batch's counts when it is cut into shares. */
      counts?: BatchShare['counts'];
      /** First micro-batch of an optimizer step: clear the step's gradient first. */
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
const roundBarrier = new SharedBarrier(barrierWords(CONTROL.roundBarrier), abortWord);
const myGrads = gradSlot(s, me);
const myHas = s.slotHas.subarray(me * slots.length, (me + 1) * slots.length);
let model: K3mParams;
let vars: tf.Variable[];

/** This worker's range of the elements (adding up and the update). */
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
    roundBarrier.wait(W);
    const value = new Float32Array(mine.length * H);
    mine.forEach((k, i) => value.set(rows.subarray(next(k) * H, (next(k) + 1) * H), i * H));
    return {
      value: tf.tensor(value, [mine.length, H]),
      gradFunc: (dy) => {
        const d = dy.dataSync() as Float32Array;
        mine.forEach((k, i) => back.set(d.subarray(i * H, (i + 1) * H), next(k) * H));
        roundBarrier.wait(W);
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
  const [from, to] = myRange();
  // The step's gradient is not cleared (between steps it holds the weights): a tensor's first
  // share copies into it, later ones add. hasGrad says which tensors a share has written this
  // step; worker 0 resets it and writes its shares before each round's first barrier, the
  // others touch the gradient only after that barrier.
  if (m.fresh && me === 0) s.hasGrad.fill(0);
  // Share 0's gradient goes straight to where round 0 stores it, part by part as the backward
  // pass makes it, so the worker's wasm heap never holds it (the heap keeps its high-water mark).
  // Worker 0 adds into the step's gradient, which only a fresh step lets it overwrite.
  const dest = me === 0 ? (m.fresh ? s.grads : undefined) : myGrads;
  const reached = new Uint8Array(slots.length);
  const done = m.shares.length ? sharesGradients(m, dest && sinkInto(dest, reached)) : undefined;
  if (!done && exchanges(m.parts)) {
    roundBarrier.wait(W);
    roundBarrier.wait(W);
  }
  try {
    for (let r = 0; r < m.rounds; r++) {
      myHas.fill(0);
      if (r === 0) reached.forEach((x, i) => x && (myHas[i] = 1));
      if (done && r < m.shares.length) store(done.grads.slice(r * slots.length, (r + 1) * slots.length));
      // Which tensors earlier rounds and micro-batches wrote, taken before anyone adds this round's.
      const before = Uint8Array.from(s.hasGrad);
      roundBarrier.wait(W);
      addRound(from, to, before);
      // the arenas are read until every worker has added its range
      roundBarrier.wait(W);
    }
  } finally {
    for (const g of done?.grads ?? []) g?.dispose();
  }
  return { type: 'micro', id: m.id, shares: done?.results ?? [] };
}

/**
 * Forward and backward of all this worker's shares in one pass, each share on its own copy of the
 * weights: returns each share's losses and its gradients (share by share, slot by slot; null
 * where a share did not reach a tensor).
 */
/**
 * A sink for share 0's gradient parts (the first `slots.length` of the leaves): each is written
 * into `dest` at its slot, the first part copied, later ones added in the order the backward pass
 * gives them (float32 additions, as the engine's would be), and its slot marked in `reached`.
 */
function sinkInto(dest: Float32Array, reached: Uint8Array): GradientSink {
  return (k, dx, first) => {
    const slot = slots[k];
    if (!slot) return false;
    const d = wasmView(dx) ?? (dx.dataSync() as Float32Array);
    const o = slot.offset;
    if (first) dest.set(d, o);
    else addFloats(dest.subarray(o, o + d.length), d);
    reached[slot.index] = 1;
    return true;
  };
}

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

/**
 * One share's gradients into this worker's arena, marking the tensors it reached. Worker 0 writes
 * straight into the step's gradient: it copies a tensor no share has written this step (worker 0
 * runs a round's first share, and hasGrad is settled until the round's first barrier), adds to
 * the others.
 */
function store(grads: (tf.Tensor | null)[]): void {
  const sum = s.grads;
  grads.forEach((g, j) => {
    if (!g) return;
    // Read where the gradient lies on wasm; a copy elsewhere.
    const d = wasmView(g) ?? (g.dataSync() as Float32Array);
    const slot = slots[j]!;
    const o = slot.offset;
    if (myGrads) myGrads.set(d, o);
    else if (!s.hasGrad[slot.index]) sum.set(d, o);
    else addFloats(sum.subarray(o, o + d.length), d);
    myHas[slot.index] = 1;
  });
}

/**
 * Marks the round's tensors and adds workers 1..W-1's arenas, in share order, to the step's
 * gradient over `[from, to)`; an arena whose tensor no earlier share wrote this step (per
 * `before`, the marks of earlier rounds, and this round's earlier shares) is copied instead.
 */
function addRound(from: number, to: number, before: Uint8Array): void {
  const sum = s.grads;
  const written = before.slice();
  for (let w = 0; w < W; w++) {
    const g = gradSlot(s, w);
    const has = s.slotHas.subarray(w * slots.length, (w + 1) * slots.length);
    for (const slot of slots) {
      if (!has[slot.index]) continue;
      s.hasGrad[slot.index] = 1;
      const copy = !written[slot.index];
      written[slot.index] = 1;
      if (!g) continue;
      const a = Math.max(from, slot.offset);
      const b = Math.min(to, slot.offset + slot.size);
      if (a >= b) continue;
      if (copy) sum.set(g.subarray(a, b), a);
      else addFloats(sum.subarray(a, b), g.subarray(a, b));
    }
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
  abortAll(abortWord, [barrierWords(CONTROL.stepBarrier), barrierWords(CONTROL.roundBarrier)]);
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

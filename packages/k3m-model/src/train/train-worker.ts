/**
 * @file One data-parallel training worker (a worker thread with its own TensorFlow.js back end),
 * started by {@link WorkerPool} through `train-worker.js`. It holds a copy of the weights as
 * variables and answers three requests:
 *
 *   micro     forward and backward on its shares of a micro-batch, one per round: each round every
 *             worker writes its share's gradient to its arena, and after a barrier adds the
 *             round's arenas, in share order, to the step's gradient over its range of the
 *             elements (cleared on the step's first micro-batch)
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
import { startBackend } from '../backend.ts';
import type { Batch } from '../data/batch.ts';
import { forward, type AccuracyCounts, type BatchShare, type FusionMode, type LossName, type LossWeights, type ModelFixes } from '../model/k3m.ts';
import { K3mParams } from '../model/params.ts';
import { ItemStreams } from '../ops/nn.ts';
import { adamwUpdate, clipFactor, sumOfSquares } from './adamw.ts';
import { batchCounts } from './batch-share.ts';
import { abortAll, BARRIER_WORDS, SharedBarrier, WorkerAborted } from './shared-barrier.ts';
import { CONTROL, gradSlot, NORM_CHUNK, normChunks, sharedAdam, sharedParams, updateRange, type SharedTraining } from './shared-training.ts';
import { lossValues } from './validate.ts';

/** `workerData` of a training worker. */
export interface WorkerInit {
  index: number;
  backend: string;
  shared: SharedTraining;
  fusionMode: FusionMode;
  fixes: ModelFixes;
  weights: LossWeights;
  shares?: number;
}

/** One share of a micro-batch: its items (with the neighbour, when cut) as a batch, and their indices in the micro-batch. */
export interface ShareJob {
  batch: Batch;
  items: number[];
}

/** Requests, each answered by a message of the same `type` and `id` (or `error`). */
export type ToWorker =
  | {
      type: 'micro';
      id: number;
      /** This worker's shares, one per round (none in a round when the shares run out). */
      shares: ShareJob[];
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
const params = sharedParams(s);
const adam = sharedAdam(s);
const slots = params.layout.slots;
const abortWord = s.control.subarray(CONTROL.abort, CONTROL.abort + 1);
const barrierWords = (at: number) => s.control.subarray(at, at + BARRIER_WORDS);
const stepBarrier = new SharedBarrier(barrierWords(CONTROL.stepBarrier), abortWord);
const roundBarrier = new SharedBarrier(barrierWords(CONTROL.roundBarrier), abortWord);
const myGrads = gradSlot(s, me);
const myHas = s.slotHas.subarray(me * slots.length, (me + 1) * slots.length);
let model: K3mParams;
let vars: tf.Variable[];
let slotOfVar: Map<string, (typeof slots)[number]>;

/** Whether a share has a labelled position for one of the losses in use. */
function labelled(c: BatchShare['counts'], w: LossWeights): boolean {
  return (w.t !== 0 && c.t > 0) || (w.v !== 0 && c.v > 0) || (w.pv !== 0 && c.pv > 0);
}

/** This worker's range of the elements (adding up and the update). */
const myRange = (): [number, number] => updateRange(params.layout.total, W, me);

function micro(m: Extract<ToWorker, { type: 'micro' }>): FromWorker {
  const [from, to] = myRange();
  // Worker 0 clears the step's gradient and adds its share straight into it before the round's
  // first barrier; the others touch it only after that barrier.
  if (m.fresh && me === 0) {
    s.grads.fill(0);
    s.hasGrad.fill(0);
  }
  const results: { loss: number; losses: LossParts }[] = [];
  for (let r = 0; r < m.rounds; r++) {
    myHas.fill(0);
    const job = m.shares[r];
    if (job) results.push(shareGradient(job, m));
    roundBarrier.wait(W);
    addRound(from, to);
    // the arenas are read until every worker has added its range
    roundBarrier.wait(W);
  }
  return { type: 'micro', id: m.id, shares: results };
}

/**
 * Forward and backward of one share, its losses returned. Worker 0's share is the round's first:
 * its gradient is added to the step's directly; the others' go to their arenas.
 */
function shareGradient(job: ShareJob, m: Extract<ToWorker, { type: 'micro' }>): { loss: number; losses: LossParts } {
  const batch = job.batch;
  // Nothing labelled for any loss in use (a small share, a model without knowledge, whose
  // structure loss is off): the share's gradient is zero, and TensorFlow.js refuses a loss that
  // no variable reaches. The structure loss, when on, scores every item.
  if (!init.weights.tri && !labelled(batchCounts(batch), init.weights)) return { loss: 0, losses: {} };
  const share: BatchShare | undefined = m.counts ? { counts: m.counts } : undefined;
  let losses: LossParts = {};
  const { value, grads } = tf.variableGrads(() => {
    const r = forward(model, batch, { fusionMode: init.fusionMode, training: true, rng: ItemStreams.of(m.key, job.items), fixes: init.fixes, weights: init.weights, share });
    losses = lossValues(r.losses);
    return r.loss! as tf.Scalar;
  }, vars);
  const loss = value.dataSync()[0]!;
  value.dispose();
  const sum = s.grads;
  for (const [name, g] of Object.entries(grads)) {
    const slot = slotOfVar.get(name)!;
    const d = g.dataSync() as Float32Array;
    const o = slot.offset;
    if (myGrads) myGrads.set(d, o);
    else for (let j = 0; j < d.length; j++) sum[o + j]! += d[j]!;
    myHas[slot.index] = 1;
    g.dispose();
  }
  return { loss, losses };
}

/** Marks the round's tensors and adds workers 1..W-1's arenas, in share order, to the step's gradient over `[from, to)`. */
function addRound(from: number, to: number): void {
  const sum = s.grads;
  for (let w = 0; w < W; w++) {
    const g = gradSlot(s, w);
    const has = s.slotHas.subarray(w * slots.length, (w + 1) * slots.length);
    for (const slot of slots) {
      if (!has[slot.index]) continue;
      s.hasGrad[slot.index] = 1;
      if (!g) continue;
      const a = Math.max(from, slot.offset);
      const b = Math.min(to, slot.offset + slot.size);
      for (let j = a; j < b; j++) sum[j]! += g[j]!;
    }
  }
}

function apply(m: Extract<ToWorker, { type: 'apply' }>): FromWorker {
  const [from, to] = myRange();
  const total = params.layout.total;
  const has = s.hasGrad;
  let scale = m.scale;
  let norm: number | undefined;
  if (m.clip !== undefined) {
    const chunks = normChunks(total);
    const [c0, c1] = updateRange(chunks, W, me);
    for (let c = c0; c < c1; c++) s.norms[c] = sumOfSquares(s.grads, params.layout, has, c * NORM_CHUNK, Math.min(total, (c + 1) * NORM_CHUNK));
    stepBarrier.wait(W);
    let sq = 0;
    for (let c = 0; c < chunks; c++) sq += s.norms[c]!;
    norm = Math.sqrt(sq) * scale;
    scale *= clipFactor(norm, m.clip);
  }
  adamwUpdate(params.data, adam, { grads: s.grads, scale, hasGrad: has, lr: m.lr }, from, to);
  stepBarrier.wait(W);
  tf.tidy(() => {
    for (const slot of slots) if (has[slot.index]) vars[slot.index]!.assign(tf.tensor(params.view(slot.name), slot.shape));
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
  model = K3mParams.fromValues(s.config, (n) => params.view(n));
  vars = slots.map((x) => model.get(x.name));
  slotOfVar = new Map(vars.map((v, i) => [v.name, slots[i]!]));
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

/**
 * @file One data-parallel training worker (a worker thread with its own TensorFlow.js back end),
 * started by {@link WorkerPool} through `train-worker.js`. It holds a copy of the weights as
 * variables and answers three requests:
 *
 *   micro     forward and backward on its share of a micro-batch; the gradients are added to its
 *             gradient arena in shared memory (cleared on the step's first micro-batch)
 *   apply     the AdamW update of its range of the elements: sum the workers' gradients (in worker
 *             order), optionally clip by the global norm (a barrier to add up the partial norms),
 *             update weights and moments in shared memory; after a barrier, reload the weights
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
import { customOp } from '../ops/custom-grad.ts';
import { ItemStreams } from '../ops/nn.ts';
import { adamwUpdate, clipFactor, sumOfSquares } from './adamw.ts';
import { batchCounts } from './batch-share.ts';
import { abortAll, BARRIER_WORDS, SharedBarrier, WorkerAborted } from './shared-barrier.ts';
import { CONTROL, gradSlot, sharedAdam, sharedParams, updateRange, type SharedTraining } from './shared-training.ts';
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

/** Requests, each answered by a message of the same `type` and `id` (or `error`). */
export type ToWorker =
  | {
      type: 'micro';
      id: number;
      /** This worker's share; absent when the micro-batch has fewer items than workers. */
      batch?: Batch;
      /** Key of the micro-batch's random streams, and this share's first item in it. */
      key: number;
      first: number;
      /** Workers holding a share of this micro-batch (they exchange structure-loss rows). */
      parts: number;
      counts: BatchShare['counts'];
      /** First micro-batch of an optimizer step: clear the gradient arena first. */
      fresh: boolean;
    }
  | { type: 'apply'; id: number; lr: number; scale: number; clip?: number }
  | { type: 'validate'; id: number; batch: Batch };

export type LossParts = Partial<Record<LossName, number>>;

export type FromWorker =
  | { type: 'ready' }
  | { type: 'micro'; id: number; loss: number; losses: LossParts }
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
const shareBarrier = new SharedBarrier(barrierWords(CONTROL.shareBarrier), abortWord);
const myGrads = gradSlot(s, me);
const myHas = s.hasGrad.subarray(me * slots.length, (me + 1) * slots.length);

let model: K3mParams;
let vars: tf.Variable[];
let slotOfVar: Map<string, (typeof slots)[number]>;

/** The structure loss's neighbour exchange: this share's first c_initial row out, the next share's in. */
function nextItemOp(parts: number): (first: tf.Tensor) => tf.Tensor {
  const H = s.config.hidden_size;
  const rows = s.exchange.subarray(0, W * H);
  const grads = s.exchange.subarray(W * H, 2 * W * H);
  const next = (me + 1) % parts;
  return customOp<[tf.Tensor]>((first) => {
    rows.set(first.dataSync(), me * H);
    shareBarrier.wait(parts);
    return {
      value: tf.tensor(rows.slice(next * H, (next + 1) * H), [1, H]),
      gradFunc: (dy) => {
        grads.set(dy.dataSync(), next * H);
        shareBarrier.wait(parts);
        return [tf.tensor(grads.slice(me * H, (me + 1) * H), [1, H])];
      },
    };
  });
}

/** Whether a share has a labelled position for one of the losses in use. */
function labelled(c: BatchShare['counts'], w: LossWeights): boolean {
  return (w.t !== 0 && c.t > 0) || (w.v !== 0 && c.v > 0) || (w.pv !== 0 && c.pv > 0);
}

function micro(m: Extract<ToWorker, { type: 'micro' }>): FromWorker {
  if (m.fresh) {
    myGrads.fill(0);
    myHas.fill(0);
  }
  if (!m.batch) return { type: 'micro', id: m.id, loss: 0, losses: {} };
  const batch = m.batch;
  // Nothing labelled for any loss in use (a small share, a model without knowledge, whose
  // structure loss is off): the share's gradient is zero, and TensorFlow.js refuses a loss that
  // no variable reaches. The structure loss, when on, scores every item.
  if (!init.weights.tri && !labelled(batchCounts(batch), init.weights)) return { type: 'micro', id: m.id, loss: 0, losses: {} };
  const share: BatchShare | undefined = m.parts > 1 ? { counts: m.counts, nextItem: nextItemOp(m.parts) } : undefined;
  let losses: LossParts = {};
  const { value, grads } = tf.variableGrads(() => {
    const r = forward(model, batch, { fusionMode: init.fusionMode, training: true, rng: new ItemStreams(m.key, m.first, batch.shape.batchSize), fixes: init.fixes, weights: init.weights, share });
    losses = lossValues(r.losses);
    return r.loss! as tf.Scalar;
  }, vars);
  const loss = value.dataSync()[0]!;
  value.dispose();
  for (const [name, g] of Object.entries(grads)) {
    const slot = slotOfVar.get(name)!;
    const d = g.dataSync() as Float32Array;
    const o = slot.offset;
    if (m.fresh) myGrads.set(d, o);
    else for (let i = 0; i < d.length; i++) myGrads[o + i]! += d[i]!;
    myHas[slot.index] = 1;
    g.dispose();
  }
  return { type: 'micro', id: m.id, loss, losses };
}

function apply(m: Extract<ToWorker, { type: 'apply' }>): FromWorker {
  const [from, to] = updateRange(params.layout.total, W, me);
  const has = new Uint8Array(slots.length);
  for (let w = 0; w < W; w++) for (let i = 0; i < slots.length; i++) has[i]! |= s.hasGrad[w * slots.length + i]!;
  // Sum the workers' gradients of this range into worker 0's arena, in worker order.
  const sum = gradSlot(s, 0);
  const others = Array.from({ length: W - 1 }, (_, w) => gradSlot(s, w + 1));
  for (const slot of slots) {
    const a = Math.max(from, slot.offset);
    const b = Math.min(to, slot.offset + slot.size);
    if (a >= b || !has[slot.index]) continue;
    for (const g of others) for (let j = a; j < b; j++) sum[j]! += g[j]!;
  }
  let scale = m.scale;
  let norm: number | undefined;
  if (m.clip !== undefined) {
    s.norms[me] = sumOfSquares(sum, params.layout, has, from, to) * scale * scale;
    stepBarrier.wait(W);
    let total = 0;
    for (let w = 0; w < W; w++) total += s.norms[w]!;
    norm = Math.sqrt(total);
    scale *= clipFactor(norm, m.clip);
  }
  adamwUpdate(params.data, adam, { grads: sum, scale, hasGrad: has, lr: m.lr }, from, to);
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
  abortAll(abortWord, [barrierWords(CONTROL.stepBarrier), barrierWords(CONTROL.shareBarrier)]);
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

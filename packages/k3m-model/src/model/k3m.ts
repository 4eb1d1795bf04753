/**
 * @file The K3M forward pass (k3m-reference.md 4-5), functional over {@link ModelParams}:
 * shared text embeddings and layers, the image embedding and layers, the three two-stream
 * co-attention encoders with the original layer schedule, the initial-interactive fusion
 * (modes 0-3), pooling, the structure aggregation (SAM), the heads with the tied decoder, and
 * the four losses. Intermediate tensors carry the golden files' names (k3m-golden README).
 *
 * Stream conventions of the original encoder: in each co-attention call stream 1 ("A", the
 * `*1`/`v_*` parameters) is the image (or the PV text in the title↔PV call) and stream 2 ("B",
 * `*2`/`t_*`) the text (the title in the title↔PV call).
 */
import * as tf from '@tensorflow/tfjs';
import type { Batch } from '../data/batch.ts';
import { bmm, linear } from '../ops/matmul.ts';
import { crossEntropySum, dropout, gelu, layerNorm, straightThrough, type ItemStreams } from '../ops/nn.ts';
import { embedding } from '../ops/segment-sum.ts';
import type { ModelConfig } from './config.ts';
import type { ModelParams } from './params.ts';

export type FusionMode = 0 | 1 | 2 | 3;

/** Where this port deliberately differs from the original (README "Reference bugs"); `true` = the fix. */
export interface ModelFixes {
  /** Reference 8 #5: items without PV pairs get an empty knowledge aggregate (0) instead of the previous item's triples. */
  samEmptyKnowledge: boolean;
  /** Reference 8 #11: a loss with no labelled position is 0 instead of NaN. */
  lossNanGuard: boolean;
  /**
   * README #23: a structure loss that can learn (the negative's knowledge aggregate in its own
   * context, a score on item ⊙ knowledge, each positive compared with its negative); the
   * original's cannot beat chance.
   */
  samLearnableLoss: boolean;
}
export const DEFAULT_FIXES: ModelFixes = Object.freeze({ samEmptyKnowledge: true, lossNanGuard: true, samLearnableLoss: true });
export const ORIGINAL_BEHAVIOUR: ModelFixes = Object.freeze({ samEmptyKnowledge: false, lossNanGuard: false, samLearnableLoss: false });

export interface ForwardOptions {
  fusionMode: FusionMode;
  /** Dropout on (needs `rng`). Gumbel sampling follows `gumbel`. */
  training?: boolean;
  /** Dropout masks and Gumbel noise come from here: one stream per item of the batch. */
  rng?: ItemStreams;
  /**
   * Mode 1: `sample` draws Gumbel noise (the original, also at eval; reference 8 #6), `argmax`
   * picks the largest gate without noise (deterministic evaluation). Injected `gumbelNoise`
   * (tensors [B, L, 3, H] named v, t, pv) overrides both.
   */
  gumbel?: 'sample' | 'argmax';
  gumbelNoise?: { v: tf.Tensor; t: tf.Tensor; pv: tf.Tensor };
  /**
   * `all`: every golden intermediate, prediction scores for every position (parity, `forward`).
   * `train`: only the losses; the MLM/MOM heads run on labelled rows only (same loss values).
   * `represent`: pooled representations and SAM outputs, no heads, no losses.
   */
  outputs?: 'all' | 'train' | 'represent';
  fixes?: ModelFixes;
  /** Loss weights; a weight of 0 skips that loss (title/image-only models skip pv and tri). */
  weights?: LossWeights;
  /** Also count correct predictions (validation): masked title/PV tokens and structure pairs. */
  accuracy?: boolean;
  /** Set when `batch` is one data-parallel worker's share of a larger micro-batch (training only). */
  share?: BatchShare;
}

/**
 * What a share of a micro-batch needs from the rest of it, so that the sum of the shares' losses
 * (and so of their gradients) is the whole micro-batch's: each loss's denominator over the whole
 * batch. (The structure loss's negative of the share's last item, the NEXT item's c_initial,
 * reference 4.6, is handed to {@link ForwardStart.finish}.)
 */
export interface BatchShare {
  /** Labelled title tokens, masked regions, labelled PV tokens in the whole micro-batch; its items. */
  counts: { t: number; v: number; pv: number; items: number };
}

/**
 * A forward pass stopped after the encoders: `first` is the batch's first item's c_initial
 * [1, H] (the previous share's negative), absent when the structure loss is off; `finish` runs
 * the structure loss and the heads, with `next` [1, H] as the last item's negative (default: the
 * batch's own first item, the reference's roll).
 */
export interface ForwardStart {
  first?: tf.Tensor;
  finish(next?: tf.Tensor): ForwardResult;
}

/**
 * [correct, total] per task. `tHidden`/`pvHidden` count only the labelled positions whose input
 * does not show the answer ([MASK] or a random id): BERT keeps 10% of the selected tokens as they
 * are, so a model that copies its input and otherwise guesses the most frequent token already
 * scores about 0.1 + 0.8 x the majority share on all labelled positions.
 */
export interface AccuracyCounts {
  t: [number, number];
  pv: [number, number];
  tri: [number, number];
  tHidden: [number, number];
  pvHidden: [number, number];
}

export interface LossWeights {
  t: number;
  v: number;
  pv: number;
  tri: number;
}
export const DEFAULT_LOSS_WEIGHTS: LossWeights = Object.freeze({ t: 1, v: 1, pv: 1, tri: 1 });
export const LOSS_NAMES = ['masked_loss_t', 'masked_loss_v', 'masked_loss_pv', 'loss_tri'] as const;
export type LossName = (typeof LOSS_NAMES)[number];

export interface ForwardResult {
  /** Scalars (shape [] ) by golden name; absent when the loss is switched off. */
  losses: Partial<Record<LossName, tf.Scalar>>;
  /** Weighted sum of the present losses (train/all). */
  loss?: tf.Scalar;
  /** Named intermediates (see {@link ForwardOptions.outputs}). */
  outputs: Record<string, tf.Tensor>;
  accuracy?: AccuracyCounts;
}

/** Rows whose argmax equals the label (labels < 0 ignored). */
/** [correct, total] over the labelled rows, and over those whose input (if given) is not the label. */
function countCorrect(logits: tf.Tensor, labels: Int32Array, inputs?: Int32Array): { all: [number, number]; hidden: [number, number] } {
  const pred = tf.argMax(logits, -1).dataSync();
  const all: [number, number] = [0, 0];
  const hidden: [number, number] = [0, 0];
  labels.forEach((l, i) => {
    if (l < 0) return;
    const hit = pred[i] === l ? 1 : 0;
    all[0] += hit;
    all[1]++;
    if (inputs?.[i] === l) return;
    hidden[0] += hit;
    hidden[1]++;
  });
  return { all, hidden };
}

const ATTN_MASK_ADD = -10000;

interface Ctx {
  P: ModelParams;
  c: ModelConfig;
  rng?: ItemStreams;
  training: boolean;
}

const p = (ctx: Ctx, name: string) => ctx.P.get(name);
const lin = (ctx: Ctx, x: tf.Tensor, name: string) => linear(x, p(ctx, `${name}.weight`), p(ctx, `${name}.bias`));
const ln = (ctx: Ctx, x: tf.Tensor, name: string) => layerNorm(x, p(ctx, `${name}.weight`), p(ctx, `${name}.bias`), ctx.c.layer_norm_eps);
const drop = (ctx: Ctx, x: tf.Tensor, prob: number) => (ctx.training ? dropout(x, prob, ctx.rng) : x);

/** [B, L, D] → [B·h, L, D/h] */
function splitHeads(x: tf.Tensor, h: number): tf.Tensor {
  const [B, L, D] = x.shape as [number, number, number];
  return tf.reshape(tf.transpose(tf.reshape(x, [B, L, h, D / h]), [0, 2, 1, 3]), [B * h, L, D / h]);
}

/** [B·h, L, d] → [B, L, h·d] */
function mergeHeads(x: tf.Tensor, B: number, h: number): tf.Tensor {
  const [, L, d] = x.shape as [number, number, number];
  return tf.reshape(tf.transpose(tf.reshape(x, [B, h, L, d]), [0, 2, 1, 3]), [B, L, h * d]);
}

/** softmax(q·kᵀ/√d + mask)·v over h heads; `extMask` is [B, 1, 1, Lk]. */
function attend(ctx: Ctx, q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, extMask: tf.Tensor, h: number, dropP: number): tf.Tensor {
  const [B, Lq, D] = q.shape as [number, number, number];
  const Lk = k.shape[1]!;
  const d = D / h;
  const scores = tf.div(bmm(splitHeads(q, h), tf.transpose(splitHeads(k, h), [0, 2, 1])), Math.sqrt(d));
  const probs = drop(ctx, tf.softmax(tf.add(tf.reshape(scores, [B, h, Lq, Lk]), extMask)), dropP);
  return mergeHeads(bmm(tf.reshape(probs, [B * h, Lq, Lk]), splitHeads(v, h)), B, h);
}

/**
 * BertLayer / BertImageLayer (M:…): self-attention, residual LN, FFN, residual LN. Each layer
 * runs in a tidy: what the backward pass needs is saved on the tape, and the layer's other
 * temporaries go at its end instead of at the end of the whole forward pass.
 */
function selfLayer(ctx: Ctx, x: tf.Tensor, extMask: tf.Tensor, name: string, heads: number, hidP: number, attP: number): tf.Tensor {
  return tf.tidy(() => selfLayerBody(ctx, x, extMask, name, heads, hidP, attP));
}

function selfLayerBody(ctx: Ctx, x: tf.Tensor, extMask: tf.Tensor, name: string, heads: number, hidP: number, attP: number): tf.Tensor {
  const s = `${name}.attention.self`;
  const ctxv = attend(ctx, lin(ctx, x, `${s}.query`), lin(ctx, x, `${s}.key`), lin(ctx, x, `${s}.value`), extMask, heads, attP);
  const a = ln(ctx, tf.add(drop(ctx, lin(ctx, ctxv, `${name}.attention.output.dense`), hidP), x), `${name}.attention.output.LayerNorm`);
  const inter = gelu(lin(ctx, a, `${name}.intermediate.dense`));
  return ln(ctx, tf.add(drop(ctx, lin(ctx, inter, `${name}.output.dense`), hidP), a), `${name}.output.LayerNorm`);
}

/** BertConnectionLayer / _two_text (M:1021-1106): bi-attention, BiOutput, one FFN per stream (in a tidy, as selfLayer). */
function coLayer(ctx: Ctx, A: tf.Tensor, maskA: tf.Tensor, B: tf.Tensor, maskB: tf.Tensor, name: string, heads: number, hidPA: number, hidPB: number) {
  return tf.tidy(() => coLayerBody(ctx, A, maskA, B, maskB, name, heads, hidPA, hidPB)) as unknown as readonly [tf.Tensor, tf.Tensor];
}

function coLayerBody(ctx: Ctx, A: tf.Tensor, maskA: tf.Tensor, B: tf.Tensor, maskB: tf.Tensor, name: string, heads: number, hidPA: number, hidPB: number) {
  const c = ctx.c;
  const b = `${name}.biattention`;
  const q1 = lin(ctx, A, `${b}.query1`);
  const k1 = lin(ctx, A, `${b}.key1`);
  const v1 = lin(ctx, A, `${b}.value1`);
  const q2 = lin(ctx, B, `${b}.query2`);
  const k2 = lin(ctx, B, `${b}.key2`);
  const v2 = lin(ctx, B, `${b}.value2`);
  const ctxB = attend(ctx, q2, k1, v1, maskA, heads, c.v_attention_probs_dropout_prob);
  const ctxA = attend(ctx, q1, k2, v2, maskB, heads, c.attention_probs_dropout_prob);
  const o = `${name}.biOutput`;
  const A1 = ln(ctx, tf.add(drop(ctx, lin(ctx, ctxA, `${o}.dense1`), hidPA), A), `${o}.LayerNorm1`);
  const B1 = ln(ctx, tf.add(drop(ctx, lin(ctx, ctxB, `${o}.dense2`), hidPB), B), `${o}.LayerNorm2`);
  const A2 = ln(ctx, tf.add(drop(ctx, lin(ctx, gelu(lin(ctx, A1, `${name}.v_intermediate.dense`)), `${name}.v_output.dense`), hidPA), A1), `${name}.v_output.LayerNorm`);
  const B2 = ln(ctx, tf.add(drop(ctx, lin(ctx, gelu(lin(ctx, B1, `${name}.t_intermediate.dense`)), `${name}.t_output.dense`), hidPB), B1), `${name}.t_output.LayerNorm`);
  return [A2, B2];
}

/**
 * The three encoder calls of `BertEncoder_tri` (reference 4.4) in lockstep. Every text stream
 * (title and PV of the title↔image and PV↔image calls, both streams of the title↔PV call) runs
 * the same shared text layers over the same index ranges between co-attention layers, and both
 * image streams the same image layers; so each shared layer runs ONCE on the streams stacked
 * along the batch (titles padded to the PV length with masked positions, which add exact zeros
 * to every softmax), instead of four (two) times. Each stream keeps its own dropout draws, as
 * in the original. Co-attention layers have their own weights and run per call.
 * Returns [seq_v, seq_t, seq_v_pv, seq_pv_v, seq_pv_t, seq_t_pv].
 */
function encoders(ctx: Ctx, embT: tf.Tensor, embPv: tf.Tensor, embV: tf.Tensor, maskT: Float32Array, maskPv: Float32Array, maskV: Float32Array) {
  const c = ctx.c;
  const [B, Lt] = embT.shape as [number, number];
  const Lp = embPv.shape[1]!;
  const L = Math.max(Lt, Lp);
  const padMask = (m: Float32Array, len: number) => {
    const out = new Float32Array(B * L);
    for (let i = 0; i < B; i++) out.set(m.subarray(i * len, (i + 1) * len), i * L);
    return out;
  };
  const mT = padMask(maskT, Lt);
  const mP = padMask(maskPv, Lp);
  const textMask4 = new Float32Array(4 * B * L);
  [mT, mP, mP, mT].forEach((m, k) => textMask4.set(m, k * B * L));
  const extText4 = extMask(tf.tensor2d(textMask4, [4 * B, L]));
  const extV = extMask(tf.tensor2d(maskV, [B, maskV.length / B]));
  const extV2 = tf.concat([extV, extV], 0);
  const extT = extMask(tf.tensor2d(maskT, [B, Lt]));
  const extP = extMask(tf.tensor2d(maskPv, [B, Lp]));
  const pad = (x: tf.Tensor) => (x.shape[1] === L ? x : tf.pad(x, [[0, 0], [0, L - x.shape[1]!], [0, 0]]));
  const cut = (x: tf.Tensor, len: number) => (len === L ? x : tf.slice(x, [0, 0, 0], [-1, len, -1]));
  // Text group order: title (t↔v), PV (pv↔v), PV (t↔pv, stream A), title (t↔pv, stream B).
  let text = tf.concat([pad(embT), pad(embPv), pad(embPv), pad(embT)], 0);
  let image = tf.concat([embV, embV], 0);
  const textLayers = (from: number, to: number) => {
    for (let i = from; i < to; i++) {
      text = selfLayer(ctx, text, extText4, `bert_tri.encoder_tri.layer.${i}`, c.num_attention_heads, c.hidden_dropout_prob, c.attention_probs_dropout_prob);
    }
  };
  const imageLayers = (from: number, to: number) => {
    for (let i = from; i < to; i++) {
      image = selfLayer(ctx, image, extV2, `bert_tri.encoder_tri.v_layer.${i}`, c.v_num_attention_heads, c.v_hidden_dropout_prob, c.v_attention_probs_dropout_prob);
    }
  };
  const enc = 'bert_tri.encoder_tri';
  const heads = c.bi_num_attention_heads;
  const hv = c.v_hidden_dropout_prob;
  const ht = c.hidden_dropout_prob;
  let tStart = 0;
  let vStart = 0;
  for (let k = 0; k < c.t_biattention_id.length; k++) {
    imageLayers(vStart, c.v_biattention_id[k]!);
    textLayers(tStart, c.t_biattention_id[k]!);
    const [t1, p2, p3, t3] = tf.split(text, 4, 0).map((x, j) => cut(x, j === 0 || j === 3 ? Lt : Lp));
    const [v1, v2] = tf.split(image, 2, 0);
    const [v1n, t1n] = coLayer(ctx, v1!, extV, t1!, extT, `${enc}.c_layer.${k}`, heads, hv, ht);
    const [v2n, p2n] = coLayer(ctx, v2!, extV, p2!, extP, `${enc}.c_layer_pv_v.${k}`, heads, hv, ht);
    const [p3n, t3n] = coLayer(ctx, p3!, extP, t3!, extT, `${enc}.c_layer_pv_t.${k}`, heads, ht, ht);
    text = tf.concat([pad(t1n), pad(p2n), pad(p3n), pad(t3n)], 0);
    image = tf.concat([v1n, v2n], 0);
    vStart = c.v_biattention_id[k]!;
    tStart = c.t_biattention_id[k]!;
  }
  imageLayers(vStart, c.v_num_hidden_layers);
  textLayers(tStart, c.num_hidden_layers);
  const [t1, p2, p3, t3] = tf.split(text, 4, 0);
  const [v1, v2] = tf.split(image, 2, 0);
  return [v1!, cut(t1!, Lt), v2!, cut(p2!, Lp), cut(p3!, Lp), cut(t3!, Lt)] as const;
}

/** IFFM (reference 4.5) for one modality m ∈ {v, t, pv}. */
function fuse(ctx: Ctx, m: 'v' | 't' | 'pv', ind: tf.Tensor, c1: tf.Tensor, c2: tf.Tensor, o: ForwardOptions, out: Record<string, tf.Tensor>): tf.Tensor {
  switch (o.fusionMode) {
    case 0:
      return tf.div(tf.add(tf.add(ind, c1), c2), 3);
    case 3:
      return tf.div(tf.add(c1, c2), 2);
  }
  const xs = [tf.relu(ind), tf.relu(c1), tf.relu(c2)];
  const f = tf.concat(xs, -1);
  const gates = (['self', 'cross1', 'cross2'] as const).map((k) => tf.sigmoid(lin(ctx, f, `score_${k}_${m}`)));
  if (o.fusionMode === 2) return lin(ctx, tf.concat(xs.map((x, k) => tf.mul(x, gates[k]!)), -1), `soft_${m}`);
  // Mode 1: a hard choice among the three for every (token, channel) element. The softmax over
  // 3 is written out elementwise on [B, L, H] tensors: no stacking or transposes (slow on wasm).
  const injected = o.gumbelNoise?.[m];
  const sample = !injected && (o.gumbel ?? 'sample') === 'sample';
  if (sample && !ctx.rng) throw new Error('fusion mode 1 with Gumbel sampling needs an rng (or gumbel: "argmax")');
  const z = gates.map((g, k) => {
    if (injected) return tf.add(g, tf.squeeze(tf.slice(injected, [0, 0, k, 0], [-1, -1, 1, -1]), [2]));
    if (!sample) return g;
    const noise = ctx.rng!.fill(g.shape, new Float32Array(g.size), (rng, out, from, to) => {
      for (let i = from; i < to; i++) out[i] = rng.gumbel();
    });
    return tf.add(g, tf.tensor(noise, g.shape));
  });
  const zMax = tf.maximum(tf.maximum(z[0]!, z[1]!), z[2]!);
  const e = z.map((zk) => tf.exp(tf.sub(zk, zMax)));
  const sum = tf.add(tf.add(e[0]!, e[1]!), e[2]!);
  // Exact ties have probability zero with noise.
  const g = e.map((ek, k) => straightThrough(tf.cast(tf.equal(z[k]!, zMax), 'float32'), tf.div(ek, sum)));
  if (o.outputs === 'all') out[`gumbel_onehot_${m}`] = tf.stack(g, 2);
  return tf.add(tf.add(tf.mul(g[0]!, xs[0]!), tf.mul(g[1]!, xs[1]!)), tf.mul(g[2]!, xs[2]!));
}

const extMask = (mask: tf.Tensor) => tf.expandDims(tf.expandDims(tf.mul(tf.sub(1, mask), ATTN_MASK_ADD), 1), 1);

/** Selection matrix [B, P, L] averaging the two endpoint rows of each valid pair (reference 4.6, bug 4 reproduced). */
function pairSelector(idx: Int32Array, valid: Uint8Array, B: number, P: number, L: number): tf.Tensor {
  const sel = new Float32Array(B * P * L);
  for (let i = 0; i < B * P; i++) {
    if (!valid[i]) continue;
    sel[i * L + idx[2 * i]!]! += 0.5;
    sel[i * L + idx[2 * i + 1]!]! += 0.5;
  }
  return tf.tensor(sel, [B, P, L]);
}

/** Cross-entropy with ignore index −1, mean over labelled rows (`n`: their count, by default in `labels`); `logits` [N, V]. */
function maskedCe(logits: tf.Tensor, labels: Int32Array, nanGuard: boolean, n = labels.reduce((a, l) => a + (l >= 0 ? 1 : 0), 0)): tf.Scalar {
  return tf.div(crossEntropySum(logits, labels), nanGuard ? Math.max(n, 1) : n) as tf.Scalar;
}

/** Indices of labelled rows (label ≥ 0 / == 1) of a flat label array. */
const rowsWhere = (labels: Int32Array, pred: (l: number) => boolean) => {
  const r: number[] = [];
  labels.forEach((l, i) => pred(l) && r.push(i));
  return r;
};

/**
 * SAM's attention over an item's triples (reference 4.6): t_j = struc_w1([context; p_j; v_j]),
 * scores b_j = struc_w2(leaky_relu(t_j)), aggregate Σ softmax(b)_j t_j over the valid pairs.
 * `pv` is [B, P, 2H] (endpoint means of property and value), `context` [B, H].
 */
function structureAggregate(ctx: Ctx, context: tf.Tensor, pv: tf.Tensor, validT: tf.Tensor, hasPairs: Uint8Array, fixes: ModelFixes): { agg: tf.Tensor; scores: tf.Tensor } {
  const [Bn, NP] = validT.shape as [number, number];
  const t = lin(ctx, tf.concat([tf.tile(tf.expandDims(context, 1), [1, NP, 1]), pv], -1), 'struc_w1');
  const scores = tf.mul(tf.squeeze(lin(ctx, tf.leakyRelu(t, 0.01), 'struc_w2'), [2]), validT);
  const a = tf.mul(tf.softmax(tf.add(scores, tf.mul(tf.sub(1, validT), -1e9))), validT);
  let agg = tf.squeeze(bmm(tf.expandDims(a, 1), t), [1]);
  if (!fixes.samEmptyKnowledge && hasPairs.some((h) => !h)) {
    // Original M:2353-2369: an item without pairs reuses the last item's triples; before any
    // item had pairs the fallback is t = [context_0], whose aggregate is context_0 itself.
    const pick = new Float32Array(Bn * (Bn + 1));
    let src = Bn;
    for (let i = 0; i < Bn; i++) {
      if (hasPairs[i]) src = i;
      pick[i * (Bn + 1) + src] = 1;
    }
    const rows = tf.concat([agg, tf.slice(context, [0, 0], [1, -1])], 0);
    agg = tf.matMul(tf.tensor2d(pick, [Bn, Bn + 1]), rows);
  }
  return { agg, scores };
}

/**
 * The whole model on one batch. All tensors it creates are returned or disposed by the caller's
 * `tf.tidy`/`variableGrads`.
 */
export function forward(P: ModelParams, batch: Batch, o: ForwardOptions): ForwardResult {
  return startForward(P, batch, o).finish();
}

/**
 * {@link forward} in two steps, so that data-parallel shares can swap their first items'
 * c_initial between the encoders and the structure loss (train/train-worker.ts).
 */
export function startForward(P: ModelParams, batch: Batch, o: ForwardOptions): ForwardStart {
  const c = P.config;
  const ctx: Ctx = { P, c, rng: o.rng, training: o.training ?? false };
  const fixes = o.fixes ?? DEFAULT_FIXES;
  const w = o.weights ?? DEFAULT_LOSS_WEIGHTS;
  const mode = o.outputs ?? 'train';
  if (o.share && !fixes.samEmptyKnowledge) throw new Error('reference bug 5 (--sam-stale-triples) reaches across items: it cannot run on a share of a batch (--shares 1)');
  const { batchSize: Bn, titleLen: Lt, pvLen: Lp, regions: R, featureDim: F, numClasses: C, maxPairs: NP } = batch.shape;
  const out: Record<string, tf.Tensor> = {};
  const H = c.hidden_size;

  // Modal-encoding layer (4.3): one BertEmbeddings for title and PV.
  const textEmb = (ids: Int32Array, seg: Int32Array, L: number) => {
    const words = embedding(p(ctx, 'bert_tri.embeddings.word_embeddings.weight'), tf.tensor2d(ids, [Bn, L], 'int32'), 0);
    const pos = tf.slice(p(ctx, 'bert_tri.embeddings.position_embeddings.weight'), [0, 0], [L, H]);
    const types = embedding(p(ctx, 'bert_tri.embeddings.token_type_embeddings.weight'), tf.tensor2d(seg, [Bn, L], 'int32'));
    return drop(ctx, ln(ctx, tf.add(tf.add(words, pos), types), 'bert_tri.embeddings.LayerNorm'), c.hidden_dropout_prob);
  };
  const embT = textEmb(batch.inputIds, batch.segmentIds, Lt);
  const embPv = textEmb(batch.inputIdsPv, batch.segmentIdsPv, Lp);
  const feat = tf.tensor3d(batch.imageFeat, [Bn, R + 1, F]);
  const loc = tf.tensor3d(batch.imageLoc, [Bn, R + 1, 5]);
  const embV = drop(
    ctx,
    ln(ctx, tf.add(lin(ctx, feat, 'bert_tri.v_embeddings.image_embeddings'), lin(ctx, loc, 'bert_tri.v_embeddings.image_location_embeddings')), 'bert_tri.v_embeddings.LayerNorm'),
    c.v_hidden_dropout_prob,
  );

  const [seqV, seqT, seqVPv, seqPvV, seqPvT, seqTPv] = encoders(
    ctx,
    embT,
    embPv,
    embV,
    Float32Array.from(batch.inputMask),
    Float32Array.from(batch.inputMaskPv),
    Float32Array.from(batch.imageMask),
  );

  if (mode === 'all') {
    Object.assign(out, { emb_t: embT, emb_pv: embPv, emb_v: embV, seq_t: seqT, seq_v: seqV, seq_pv_v: seqPvV, seq_v_pv: seqVPv, seq_t_pv: seqTPv, seq_pv_t: seqPvT });
    const pool = (x: tf.Tensor, which: 't' | 'v') => tf.relu(lin(ctx, tf.squeeze(tf.slice(x, [0, 0, 0], [-1, 1, -1]), [1]), `bert_tri.${which}_pooler.dense`));
    Object.assign(out, {
      enc_pooler_t: pool(seqT, 't'),
      enc_pooler_v: pool(seqV, 'v'),
      enc_pooler_pv_v: pool(seqPvV, 't'),
      enc_pooler_v_pv: pool(seqVPv, 'v'),
      enc_pooler_t_pv: pool(seqTPv, 't'),
      enc_pooler_pv_t: pool(seqPvT, 't'),
    });
  }

  // Fusion in the original's call order v, t, pv (the order Gumbel noise is drawn in).
  const fusedV = fuse(ctx, 'v', embV, seqV, seqVPv, o, out);
  const fusedT = fuse(ctx, 't', embT, seqT, seqTPv, o, out);
  const fusedPv = fuse(ctx, 'pv', embPv, seqPvV, seqPvT, o, out);

  // Means skip position 0 and ignore the masks (reference 8 #8, reproduced).
  const meanFrom1 = (x: tf.Tensor) => tf.mean(tf.slice(x, [0, 1, 0], [-1, -1, -1]), 1);
  const pooledV = lin(ctx, meanFrom1(fusedV), 'map_bi_to_individual');
  const pooledT = meanFrom1(fusedT);
  const pooledPv = meanFrom1(fusedPv);
  const cInitial = tf.div(tf.add(tf.add(pooledV, pooledT), pooledPv), 3);
  if (mode !== 'train') Object.assign(out, { fused_v: fusedV, fused_t: fusedT, fused_pv: fusedPv, pooled_v: pooledV, pooled_t: pooledT, pooled_pv: pooledPv, c_initial: cInitial });

  const tri = mode !== 'train' || w.tri !== 0;
  const first = tri ? tf.slice(cInitial, 0, 1) : undefined;
  const finish = (next: tf.Tensor | undefined = first): ForwardResult => {
  const losses: ForwardResult['losses'] = {};
  const accuracy: AccuracyCounts = { t: [0, 0], pv: [0, 0], tri: [0, 0], tHidden: [0, 0], pvHidden: [0, 0] };
  // SAM (4.6), vectorised over a [B, P] validity mask: pair j counts while index_p[i, j, 0] != 0.
  if (tri) {
    const valid = new Uint8Array(Bn * NP);
    const hasPairs = new Uint8Array(Bn);
    for (let i = 0; i < Bn; i++) {
      for (let j = 0; j < NP && batch.indexP[(i * NP + j) * 2] !== 0; j++) valid[i * NP + j] = 1;
      hasPairs[i] = valid[i * NP];
    }
    const pv = tf.concat([bmm(pairSelector(batch.indexP, valid, Bn, NP, Lp), fusedPv), bmm(pairSelector(batch.indexV, valid, Bn, NP, Lp), fusedPv)], -1);
    const validT = tf.tensor2d(Float32Array.from(valid), [Bn, NP]);
    const sam = (context: tf.Tensor) => structureAggregate(ctx, context, pv, validT, hasPairs, fixes);
    const own = sam(cInitial);
    const knowledge = lin(ctx, own.agg, 'struc_w3');
    const cFinal = tf.add(cInitial, knowledge);
    if (mode !== 'train') Object.assign(out, { sam_attn_scores: own.scores, c_final: cFinal });
    if (mode !== 'represent') {
      // The negative: the next item's representation with this item's knowledge (M:2377); a
      // share's last item takes the next share's first.
      const rolled = tf.concat([tf.slice(cInitial, [1, 0], [-1, -1]), next!], 0);
      let samLogits: tf.Tensor;
      if (fixes.samLearnableLoss) {
        // The original's classifier is linear in c + knowledge and the negative shares this
        // item's knowledge term, so the logit margins of positives minus negatives sum to 0 over
        // every batch: no parameters beat chance (README "Why the default run did not learn").
        // Fixed: the negative's aggregate is computed in its own context, the score reads the
        // agreement of item and knowledge (struc_w_loss over c ⊙ struc_w3(aggregate)), and each
        // pair is compared (logits = score(positive) - score(negative), and its negation for the
        // negative row), so what all pairs of this knowledge share cancels.
        const knowledgeNeg = lin(ctx, sam(rolled).agg, 'struc_w3');
        if (mode === 'all') out.c_final_neg = tf.add(rolled, knowledgeNeg);
        // struc_w_loss's bias cancels in the difference, so it is left out (no gradient, as #15):
        // summed rounding noise would otherwise be its only gradient.
        const diff = linear(tf.sub(tf.mul(cInitial, knowledge), tf.mul(rolled, knowledgeNeg)), p(ctx, 'struc_w_loss.weight'));
        samLogits = tf.concat([diff, tf.neg(diff)], 0);
      } else {
        const cNeg = tf.add(rolled, knowledge);
        if (mode === 'all') out.c_final_neg = cNeg;
        samLogits = lin(ctx, tf.concat([cFinal, cNeg], 0), 'struc_w_loss');
      }
      if (mode === 'all') out.sam_logits = samLogits;
      const labels = new Int32Array(2 * Bn);
      labels.fill(1, 0, Bn);
      losses.loss_tri = maskedCe(samLogits, labels, true, 2 * (o.share?.counts.items ?? Bn));
      if (o.accuracy) accuracy.tri = countCorrect(samLogits, labels).all;
    }
  }
  if (mode === 'represent') return { losses, outputs: out };

  // Heads (4.7). The MLM head is shared by title and PV, its decoder tied to the word embeddings.
  const mlmHead = (x: tf.Tensor) => {
    const h = ln(ctx, gelu(lin(ctx, x, 'cls.predictions.transform.dense')), 'cls.predictions.transform.LayerNorm');
    return linear(h, p(ctx, 'bert_tri.embeddings.word_embeddings.weight'), p(ctx, 'cls.predictions.bias'));
  };
  const imageHead = (x: tf.Tensor) =>
    lin(ctx, ln(ctx, gelu(lin(ctx, x, 'cls.imagePredictions.transform.dense')), 'cls.imagePredictions.transform.LayerNorm'), 'cls.imagePredictions.decoder');

  const mlmLoss = (fused: tf.Tensor, labels: Int32Array, L: number, name: 'prediction_scores_t' | 'prediction_scores_pv') => {
    if (mode === 'all') {
      const scores = mlmHead(fused);
      out[name] = scores;
      return maskedCe(tf.reshape(scores, [-1, c.vocab_size]), labels, fixes.lossNanGuard);
    }
    const rows = rowsWhere(labels, (l) => l >= 0);
    const total = o.share ? o.share.counts[name === 'prediction_scores_t' ? 't' : 'pv'] : rows.length;
    if (rows.length === 0) return tf.scalar(fixes.lossNanGuard || total > 0 ? 0 : NaN);
    const picked = tf.gather(tf.reshape(fused, [Bn * L, H]), tf.tensor1d(rows, 'int32'));
    const logits = mlmHead(picked);
    const rowLabels = Int32Array.from(rows, (r) => labels[r]!);
    if (o.accuracy) {
      const title = name === 'prediction_scores_t';
      const inputs = title ? batch.inputIds : batch.inputIdsPv;
      const c = countCorrect(logits, rowLabels, Int32Array.from(rows, (r) => inputs[r]!));
      accuracy[title ? 't' : 'pv'] = c.all;
      accuracy[title ? 'tHidden' : 'pvHidden'] = c.hidden;
    }
    return maskedCe(logits, rowLabels, fixes.lossNanGuard, total);
  };
  if (w.t !== 0 || mode === 'all') losses.masked_loss_t = mlmLoss(fusedT, batch.lmLabelIds, Lt, 'prediction_scores_t');
  if (w.pv !== 0 || mode === 'all') losses.masked_loss_pv = mlmLoss(fusedPv, batch.lmLabelIdsPv, Lp, 'prediction_scores_pv');

  // MOM (5): KL(target ‖ softmax(pred)) summed over classes and masked regions, / #masked regions.
  if (w.v !== 0 || mode === 'all') {
    const rows = rowsWhere(batch.imageLabel, (l) => l === 1);
    let entropyTerm = 0;
    for (const r of rows) {
      for (let k = r * C; k < (r + 1) * C; k++) {
        const t = batch.imageTarget[k]!;
        if (t > 0) entropyTerm += t * Math.log(t);
      }
    }
    const total = o.share ? o.share.counts.v : rows.length;
    const denom = fixes.lossNanGuard ? Math.max(total, 1) : total;
    let regionScores: tf.Tensor | undefined;
    if (mode === 'all') {
      const scores = imageHead(fusedV);
      out.prediction_scores_v = scores;
      regionScores = tf.reshape(tf.slice(scores, [0, 1, 0], [-1, -1, -1]), [Bn * R, C]);
      if (rows.length) regionScores = tf.gather(regionScores, tf.tensor1d(rows, 'int32'));
    } else if (rows.length) {
      regionScores = imageHead(tf.gather(tf.reshape(tf.slice(fusedV, [0, 1, 0], [-1, -1, -1]), [Bn * R, c.v_hidden_size]), tf.tensor1d(rows, 'int32')));
    }
    if (rows.length && regionScores) {
      const target = new Float32Array(rows.length * C);
      rows.forEach((r, i) => target.set(batch.imageTarget.subarray(r * C, (r + 1) * C), i * C));
      const cross = tf.sum(tf.mul(tf.tensor2d(target, [rows.length, C]), tf.logSoftmax(regionScores)));
      losses.masked_loss_v = tf.div(tf.sub(entropyTerm, cross), denom) as tf.Scalar;
    } else {
      losses.masked_loss_v = tf.scalar(fixes.lossNanGuard || total > 0 ? 0 : NaN);
    }
  }

  if (mode === 'all') {
    const rel = lin(ctx, tf.add(tf.add(pooledT, pooledV), pooledPv), 'cls.seq_relationship');
    out.seq_relationship_score = rel;
    out.next_sentence_loss_t_v_pv = maskedCe(rel, new Int32Array(Bn), true);
  }

  const weight: Record<LossName, number> = { masked_loss_t: w.t, masked_loss_v: w.v, masked_loss_pv: w.pv, loss_tri: w.tri };
  let loss: tf.Scalar | undefined;
  for (const name of LOSS_NAMES) {
    const l = losses[name];
    if (!l || weight[name] === 0) continue;
    const term = weight[name] === 1 ? l : (tf.mul(l, weight[name]) as tf.Scalar);
    loss = loss ? (tf.add(loss, term) as tf.Scalar) : term;
  }
  return { losses, loss, outputs: out, accuracy: o.accuracy ? accuracy : undefined };
  };
  return { first, finish };
}

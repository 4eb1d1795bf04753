/**
 * @file Benchmark of k3m-model's training step (not a test): forward and forward+backward ms per
 * step on wasm for (a) the golden tiny config (k3m-golden/config.json sizes) and k3m-small at batch 8 with the reference's shapes (title 36, PV 48,
 * 36+1 regions of 2048 features, 1601 classes, vocabulary 21128) and (b) one BERT-size layer
 * (768 wide, 12 heads, FFN 3072, batch 8, sequence 64), each with our custom gradients
 * (src/ops) and with tfjs's stock matmul gradients, and prints figures and ratios.
 *
 *   npx tsx tools/bench/train.ts            # wasm
 *   BENCH_BACKEND=cpu BENCH_REPS=2 npx tsx tools/bench/train.ts
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '@k3m-kit/core';
import { forward, ItemStreams, K3mParams, linear, modelConfig, startBackend, useStockGradients, bmm } from '@k3m-kit/k3m-model';
import { syntheticBatch } from '@k3m-kit/k3m-model/testing';

const REPS = Number(process.env.BENCH_REPS ?? 3);
const backend = await startBackend(process.env.BENCH_BACKEND ?? 'wasm');

/** Median ms of `fn` over REPS runs after one warm-up. */
function time(fn: () => void): number {
  fn();
  const xs: number[] = [];
  for (let i = 0; i < REPS; i++) {
    const t0 = performance.now();
    fn();
    xs.push(performance.now() - t0);
  }
  return xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
}

function measure(label: string, fwd: () => tf.Scalar, vars: tf.Variable[]) {
  const out: Record<string, number> = {};
  for (const stock of [false, true]) {
    useStockGradients(stock);
    const f = time(() => tf.tidy(() => void fwd().dataSync()));
    const fb = time(() => {
      const { value, grads } = tf.variableGrads(fwd, vars);
      value.dataSync();
      value.dispose();
      for (const g of Object.values(grads)) g?.dispose();
    });
    out[stock ? 'stock' : 'custom'] = fb;
    console.log(`${label.padEnd(34)} ${stock ? 'stock ' : 'custom'}  forward ${f.toFixed(0).padStart(6)} ms   forward+backward ${fb.toFixed(0).padStart(6)} ms`);
  }
  useStockGradients(false);
  console.log(`${label.padEnd(34)} stock / custom forward+backward: ${(out.stock! / out.custom!).toFixed(2)}x`);
}

console.log(`back end: ${backend.name}, median of ${REPS}`);

/** The golden tiny config (k3m-golden README Part B), without the file. */
const GOLDEN_TINY = {
  vocab_size: 512,
  hidden_size: 64,
  num_hidden_layers: 4,
  num_attention_heads: 4,
  intermediate_size: 128,
  v_hidden_size: 64,
  v_num_hidden_layers: 2,
  v_num_attention_heads: 4,
  v_intermediate_size: 128,
  v_biattention_id: [0, 1],
  t_biattention_id: [2, 3],
  bi_hidden_size: 64,
  bi_num_attention_heads: 4,
};

for (const [label, cfg] of [
  ['golden tiny train step, batch 8', modelConfig('k3m-small', GOLDEN_TINY)],
  ['k3m-small train step, batch 8', modelConfig('k3m-small', { vocab_size: 21128 })],
] as const) {
  const P = K3mParams.init(cfg, 1);
  const batch = syntheticBatch(1, { batchSize: 8, vocabSize: cfg.vocab_size, featureDim: 2048, numClasses: 1601, regions: 36, titleLen: 36, pvLen: 48 });
  const rng = new Rng(1);
  measure(label, () => forward(P, batch, { fusionMode: 1, training: true, rng: new ItemStreams(1, 0, 8) }).loss!, [...P.vars.values()]);
  P.dispose();
}

{
  // One BertLayer: self-attention + output + FFN, with the model's ops.
  const H = 768;
  const heads = 12;
  const B = 8;
  const L = 64;
  const r = new Rng(2);
  const v = (shape: number[]) => tf.variable(tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => r.normal() * 0.02), shape));
  const W = { q: v([H, H]), k: v([H, H]), vv: v([H, H]), o: v([H, H]), i: v([3072, H]), out: v([H, 3072]), b: v([H]), bi: v([3072]) };
  const x = tf.tensor(Float32Array.from({ length: B * L * H }, () => r.normal()), [B, L, H]);
  const split = (t: tf.Tensor) => tf.reshape(tf.transpose(tf.reshape(t, [B, L, heads, H / heads]), [0, 2, 1, 3]), [B * heads, L, H / heads]);
  const layer = () => {
    const q = split(linear(x, W.q, W.b));
    const k = split(linear(x, W.k, W.b));
    const val = split(linear(x, W.vv, W.b));
    const p = tf.softmax(tf.div(bmm(q, tf.transpose(k, [0, 2, 1])), Math.sqrt(H / heads)));
    const ctx = tf.reshape(tf.transpose(tf.reshape(bmm(p, val), [B, heads, L, H / heads]), [0, 2, 1, 3]), [B, L, H]);
    const a = tf.add(linear(ctx, W.o, W.b), x);
    const y = tf.add(linear(tf.relu(linear(a, W.i, W.bi)), W.out, W.b), a);
    return tf.mean(tf.square(y)) as tf.Scalar;
  };
  measure('BERT layer 768/12, batch 8, seq 64', layer, Object.values(W));
}

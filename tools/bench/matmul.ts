/**
 * @file Benchmark: wasm's matrix products on the machine's OpenBLAS against wasm's own XNNPACK
 * kernels, one thread, in one run (the two kernel sets are switched in the same process with
 * `setWasmKernels`). The shapes are k3m-small's and k3m-medium's: projections, the tied MLM
 * decoder over the 21,128-word vocabulary, an attention product, and the transposed products of
 * the backward pass.
 *
 *   npx tsx tools/bench/matmul.ts
 */
import { loadavg } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { blasStatus, describeBackend, selectBackend, setWasmKernels } from '@k3m-kit/core/backend';

const CASES: { what: string; a: number[]; b: number[]; ta: boolean; tb: boolean }[] = [
  { what: 'projection, k3m-small (8 x 36 tokens, 128 -> 128)', a: [288, 128], b: [128, 128], ta: false, tb: true },
  { what: 'projection, k3m-medium (8 x 36 tokens, 512 -> 512)', a: [288, 512], b: [512, 512], ta: false, tb: true },
  { what: 'FFN, k3m-medium (512 -> 2048)', a: [288, 512], b: [2048, 512], ta: false, tb: true },
  { what: 'weight gradient dy^T x, k3m-medium FFN', a: [288, 2048], b: [288, 512], ta: true, tb: false },
  { what: 'MLM decoder, 64 rows x 21,128 words (k3m-small)', a: [64, 128], b: [21128, 128], ta: false, tb: true },
  { what: 'attention scores, 32 heads x 48 x 32 by 32 x 48', a: [32, 48, 32], b: [32, 48, 32], ta: false, tb: true },
];

/** The product with explicit transposes, as k3m-model's matmul.ts does on XNNPACK (only a plain product is fast there). */
const lastTwo = (t: tf.Tensor) => (t.rank === 2 ? tf.transpose(t) : tf.transpose(t, [0, 2, 1]));
const explicit = (a: tf.Tensor, b: tf.Tensor, ta: boolean, tb: boolean) => tf.tidy(() => tf.matMul(ta ? lastTwo(a) : a, tb ? lastTwo(b) : b));

/** Median milliseconds of `reps` products after 3 warm-ups. */
function time(product: () => tf.Tensor, reps: number): number {
  for (let i = 0; i < 3; i++) product().dispose();
  const ms: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    const c = product();
    c.dataSync();
    ms.push(performance.now() - t0);
    c.dispose();
  }
  return ms.sort((x, y) => x - y)[Math.floor(ms.length / 2)]!;
}

const backend = await selectBackend('wasm');
const blas = blasStatus();
if (!blas.blas) {
  console.log(`no BLAS to compare: ${blas.reason}`);
  process.exit(0);
}
console.log(`${describeBackend(backend)}; one thread; median of 30; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
console.log(['case', 'GFLOP', 'OpenBLAS, flags: ms (GFLOP/s)', 'XNNPACK, explicit transposes: ms (GFLOP/s)', 'XNNPACK, flags: ms (GFLOP/s)', 'XNNPACK best / OpenBLAS'].join(' | '));
for (const c of CASES) {
  const a = tf.randomNormal(c.a);
  const b = tf.randomNormal(c.b);
  const out = tf.matMul(a, b, c.ta, c.tb);
  const k = c.ta ? c.a[c.a.length - 2]! : c.a[c.a.length - 1]!;
  const gflop = (2 * out.size * k) / 1e9;
  out.dispose();
  setWasmKernels('blas');
  const onBlas = time(() => tf.matMul(a, b, c.ta, c.tb), 30);
  setWasmKernels('xnnpack');
  const onXnnExplicit = time(() => explicit(a, b, c.ta, c.tb), 30);
  const onXnnFlags = time(() => tf.matMul(a, b, c.ta, c.tb), 30);
  setWasmKernels('blas');
  const cell = (ms: number) => `${ms.toFixed(3)} (${((gflop / ms) * 1e3).toFixed(1)})`;
  console.log([c.what, gflop.toFixed(3), cell(onBlas), cell(onXnnExplicit), cell(onXnnFlags), `${(Math.min(onXnnExplicit, onXnnFlags) / onBlas).toFixed(2)}x`].join(' | '));
  tf.dispose([a, b]);
}
console.log(`load average at the end ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);

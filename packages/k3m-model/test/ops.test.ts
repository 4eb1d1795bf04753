/**
 * The custom gradients of src/ops against central finite differences (float32, on functions
 * that are linear in the perturbed tensor, so the difference quotient is exact up to rounding)
 * or against autodiff of the plain formulas, and the `UnsortedSegmentSum` kernel against a plain
 * loop on both wasm and cpu.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { blasStatus, setWasmKernels } from '@k3m-kit/core/backend';
import { startBackend } from '../src/backend.ts';
import { Rng } from '@k3m-kit/core';
import { bmm, flagsAreFast, linear } from '../src/ops/matmul.ts';
import { embedding, segmentSumValues } from '../src/ops/segment-sum.ts';
import { crossEntropySum, dropout, gelu, ItemStreams, layerNorm } from '../src/ops/nn.ts';

const rand = (rng: Rng, shape: number[]) => tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal()), shape);

/** d/dx of f at x by central differences, entry by entry. */
function numericGrad(f: (x: tf.Tensor) => tf.Scalar, x: tf.Tensor, eps = 1e-2): Float32Array {
  const base = x.dataSync().slice() as Float32Array;
  const g = new Float32Array(base.length);
  for (let i = 0; i < base.length; i++) {
    const at = (d: number) => {
      const v = base.slice();
      v[i]! += d;
      return tf.tidy(() => f(tf.tensor(v, x.shape)).dataSync()[0]!);
    };
    g[i] = (at(eps) - at(-eps)) / (2 * eps);
  }
  return g;
}

function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number) {
  expect(got.length).toBe(want.length);
  let worst = 0;
  for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
  expect(worst).toBeLessThan(tol);
}

// wasm runs twice: on OpenBLAS (the default where it is installed; transposes passed as flags)
// and on its own XNNPACK kernels (explicit transposes, batched products as a convolution).
const start = async (backend: string) => {
  const b = await startBackend(backend === 'cpu' ? 'cpu' : 'wasm');
  if (b.name === 'wasm') setWasmKernels(backend === 'wasm-xnnpack' ? 'xnnpack' : 'blas');
  expect(flagsAreFast()).toBe(backend === 'wasm' && blasStatus().blas !== undefined);
};

for (const backend of ['wasm', 'wasm-xnnpack', 'cpu']) {
  describe(`custom gradients on ${backend}`, () => {
    it('linear: dx, dW, db match numeric gradients and the stock matmul gradient', async () => {
      await start(backend);
      const rng = new Rng(1);
      const x = rand(rng, [2, 3, 5]);
      const w = rand(rng, [4, 5]);
      const b = rand(rng, [4]);
      const r = rand(rng, [2, 3, 4]);
      const f = (xx: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) => tf.sum(tf.mul(linear(xx, ww, bb), r)) as tf.Scalar;
      const [gx, gw, gb] = tf.grads(f)([x, w, b]);
      expectClose(gx!.dataSync(), numericGrad((v) => f(v, w, b), x), 2e-3);
      expectClose(gw!.dataSync(), numericGrad((v) => f(x, v, b), w), 2e-3);
      expectClose(gb!.dataSync(), numericGrad((v) => f(x, w, v), b), 2e-3);
      const stock = (xx: tf.Tensor, ww: tf.Tensor) => tf.sum(tf.mul(tf.add(tf.matMul(tf.reshape(xx, [6, 5]), ww, false, true), b), tf.reshape(r, [6, 4]))) as tf.Scalar;
      const [sx, sw] = tf.grads(stock)([x, w]);
      expectClose(gx!.dataSync(), sx!.dataSync(), 1e-5);
      expectClose(gw!.dataSync(), sw!.dataSync(), 1e-5);
    });

    it('bmm: both operands match numeric gradients', async () => {
      await start(backend);
      const rng = new Rng(2);
      const a = rand(rng, [2, 3, 4]);
      const b = rand(rng, [2, 4, 5]);
      const r = rand(rng, [2, 3, 5]);
      const f = (aa: tf.Tensor, bb: tf.Tensor) => tf.sum(tf.mul(bmm(aa, bb), r)) as tf.Scalar;
      const [ga, gb] = tf.grads(f)([a, b]);
      expectClose(ga!.dataSync(), numericGrad((v) => f(v, b), a), 2e-3);
      expectClose(gb!.dataSync(), numericGrad((v) => f(a, v), b), 2e-3);
    });

    it('embedding: the table gradient (via UnsortedSegmentSum) matches numeric gradients; padding rows get none', async () => {
      await start(backend);
      const rng = new Rng(3);
      const table = rand(rng, [6, 3]);
      const ids = tf.tensor2d([0, 2, 2, 5, 1, 0], [2, 3], 'int32');
      const r = rand(rng, [2, 3, 3]);
      const f = (t: tf.Tensor) => tf.sum(tf.mul(embedding(t, ids), r)) as tf.Scalar;
      expectClose(tf.grad(f)(table).dataSync(), numericGrad(f, table), 2e-3);
      const fp = (t: tf.Tensor) => tf.sum(tf.mul(embedding(t, ids, 0), r)) as tf.Scalar;
      const g = tf.grad(fp)(table).dataSync();
      expect(Array.from(g.slice(0, 3))).toEqual([0, 0, 0]);
      expectClose(g.slice(3), numericGrad(f, table).slice(3), 2e-3);
    });

    it('layerNorm, gelu and crossEntropySum: values and written-out gradients equal autodiff of the plain formulas', async () => {
      await start(backend);
      const rng = new Rng(5);
      const x = rand(rng, [2, 3, 6]);
      const g = rand(rng, [6]);
      const b = rand(rng, [6]);
      const r = rand(rng, [2, 3, 6]);
      const plainLn = (xx: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) => {
        const c = tf.sub(xx, tf.mean(xx, 2, true));
        return tf.add(tf.mul(tf.div(c, tf.sqrt(tf.add(tf.mean(tf.square(c), 2, true), 1e-5))), gg), bb);
      };
      const lnLoss = (f: typeof plainLn) => (xx: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) => tf.sum(tf.mul(f(xx, gg, bb), r)) as tf.Scalar;
      expectClose(layerNorm(x, g, b, 1e-5).dataSync(), plainLn(x, g, b).dataSync(), 1e-5);
      const got = tf.grads(lnLoss((xx, gg, bb) => layerNorm(xx, gg, bb, 1e-5)))([x, g, b]);
      const want = tf.grads(lnLoss(plainLn))([x, g, b]);
      for (let i = 0; i < 3; i++) expectClose(got[i]!.dataSync(), want[i]!.dataSync(), 1e-4);

      const plainGelu = (xx: tf.Tensor) => tf.mul(tf.mul(xx, 0.5), tf.add(tf.erf(tf.mul(xx, Math.SQRT1_2)), 1));
      expectClose(gelu(x).dataSync(), plainGelu(x).dataSync(), 1e-6);
      expectClose(tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(gelu(xx), r)) as tf.Scalar)(x).dataSync(), tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(plainGelu(xx), r)) as tf.Scalar)(x).dataSync(), 1e-5);

      const logits = tf.mul(rand(rng, [4, 7]), 3);
      for (const labels of [Int32Array.from([2, 0, 6, 3]), Int32Array.from([2, -1, 6, -1])]) {
        const plainCe = (z: tf.Tensor) => tf.neg(tf.sum(tf.mul(tf.logSoftmax(z), tf.oneHot(tf.tensor1d(labels, 'int32'), 7)))) as tf.Scalar;
        expectClose(crossEntropySum(logits, labels).dataSync(), plainCe(logits).dataSync(), 1e-5);
        expectClose(tf.grad((z: tf.Tensor) => tf.mul(crossEntropySum(z, labels), 1.5) as tf.Scalar)(logits).dataSync(), tf.grad((z: tf.Tensor) => tf.mul(plainCe(z), 1.5) as tf.Scalar)(logits).dataSync(), 1e-5);
      }
    });

    it('UnsortedSegmentSum kernel equals a plain loop on a vocabulary-sized table', async () => {
      await start(backend);
      // Leave non-zero values where the output may be placed: the kernel must clear its table.
      tf.fill([21128, 8], 7).dispose();
      const rng = new Rng(4);
      const n = 300;
      const ids = Int32Array.from({ length: n }, () => rng.int(21128));
      const x = Float32Array.from({ length: n * 8 }, () => rng.normal());
      const got = tf.unsortedSegmentSum(tf.tensor2d(x, [n, 8]), tf.tensor1d(ids, 'int32'), 21128).dataSync();
      expect(Array.from(got)).toEqual(Array.from(segmentSumValues(x, ids, 8, 21128)));
    });

    it('dropout: each row takes its item stream\'s draws in order, 0 where the draw is below p·2³², else 1/(1-p); nothing left behind', async () => {
      await start(backend);
      const items = 3;
      const [rows, cols] = [2 * items, 50]; // two stacked groups of the same items
      for (const p of [0.1, 0.5, 0.9]) {
        const before = tf.memory().numTensors;
        const got = tf.tidy(() => dropout(tf.ones([rows, cols]), p, new ItemStreams(9, 0, items)).dataSync());
        expect(tf.memory().numTensors).toBe(before);
        const streams = Array.from({ length: items }, (_, i) => Rng.from(9, i));
        const want = new Float32Array(rows * cols);
        for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) want[r * cols + c] = streams[r % items]!.next() < p ? 0 : 1 / (1 - p);
        expect(Array.from(got)).toEqual(Array.from(want));
        const dropped = want.filter((v) => v === 0).length;
        expect(dropped).toBeGreaterThan(0);
        expect(dropped).toBeLessThan(rows * cols);
      }
    });
  });
}

afterAll(async () => {
  await startBackend('wasm');
});

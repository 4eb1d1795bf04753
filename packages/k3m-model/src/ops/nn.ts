/**
 * @file The small building blocks of the reference model (k3m-reference.md 4.1): TF-style
 * LayerNorm (eps inside the square root, biased variance), erf GELU, the cross-entropy of the
 * masked-token heads (these three with written-out gradients), inverted dropout drawn from
 * per-item streams of our seeded {@link Rng} ({@link ItemStreams}), and the straight-through
 * estimator of the hard Gumbel choice.
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '@k3m-kit/core';
import { newWasmTensor, ownsMemory, wasmView } from '@k3m-kit/core/backend';
import { customOp } from './custom-grad.ts';
import { sumRows } from './matmul.ts';

/**
 * TF-style LayerNorm over the last axis: `(x − mean)/√(var + eps)·γ + β`, biased variance. Its
 * gradient is written out (x̂ and 1/σ are all it keeps), instead of the engine keeping every
 * intermediate of nine ops: fewer kernels in the backward pass and less activation memory.
 */
export function layerNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps: number): tf.Tensor {
  const axis = x.rank - 1;
  const d = x.shape[axis]!;
  const op = customOp<[tf.Tensor, tf.Tensor, tf.Tensor]>((xx, g, b, save) => {
    const centered = tf.sub(xx, tf.mean(xx, axis, true));
    const rstd = tf.div(1, tf.sqrt(tf.add(tf.mean(tf.square(centered), axis, true), eps)));
    const xhat = tf.mul(centered, rstd);
    save([xhat, rstd, g]);
    return {
      value: tf.add(tf.mul(xhat, g), b),
      gradFunc: (dy, [sx, sr, sg]) => {
        const dxhat = tf.mul(dy, sg!);
        const dx = tf.mul(sr!, tf.sub(tf.sub(dxhat, tf.mean(dxhat, axis, true)), tf.mul(sx!, tf.mean(tf.mul(dxhat, sx!), axis, true))));
        return [dx, sumRows(tf.mul(dy, sx!)), sumRows(dy)];
      },
    };
  });
  return op(x, gamma, beta);
}

/** GELU, erf form (M:114-120), with its derivative written out (it keeps only x). */
export const gelu = customOp<[tf.Tensor]>((x, save) => {
  save([x]);
  return {
    value: tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1)),
    gradFunc: (dy, [sx]) => {
      // Φ(x) + x·φ(x)
      const cdf = tf.mul(tf.add(tf.erf(tf.mul(sx!, Math.SQRT1_2)), 1), 0.5);
      const pdf = tf.mul(tf.exp(tf.mul(tf.square(sx!), -0.5)), 1 / Math.sqrt(2 * Math.PI));
      return [tf.mul(dy, tf.add(cdf, tf.mul(sx!, pdf)))];
    },
  };
});

/**
 * Σ over rows with a label (≥ 0) of −log softmax(logits)[label], for `logits` [N, V]. Picks the
 * labels' logits instead of multiplying by a one-hot matrix, and its gradient (softmax − one-hot)
 * is written out: it keeps exp of the shifted logits only, where the engine would keep five [N, V]
 * tensors (the MLM head's are rows × 21128).
 */
export function crossEntropySum(logits: tf.Tensor, labels: Int32Array): tf.Scalar {
  const [N, V] = logits.shape as [number, number];
  const rows: number[] = [];
  const at: number[] = [];
  labels.forEach((l, i) => {
    if (l < 0) return;
    rows.push(i);
    at.push(i * V + l);
  });
  const allRows = rows.length === N;
  const op = customOp<[tf.Tensor]>((x, save) => {
    const z = tf.sub(x, tf.max(x, 1, true));
    const ez = tf.exp(z);
    const total = tf.sum(ez, 1, true);
    const lse = tf.log(total);
    // exp(z) and its row sums, so the gradient's softmax takes no second exp over [N, V].
    save([ez, total]);
    const picked = tf.sum(tf.gather(tf.reshape(z, [-1]), tf.tensor1d(at, 'int32')));
    const norm = allRows ? tf.sum(lse) : tf.sum(tf.gather(tf.reshape(lse, [-1]), tf.tensor1d(rows, 'int32')));
    return {
      value: tf.sub(norm, picked),
      gradFunc: (dy, [sez, stotal]) => {
        let p = tf.div(sez!, stotal!);
        // softmax − one-hot, rows without a label zeroed: in place on wasm's fresh tensor,
        // instead of an [N, V] one-hot, its cast and a subtraction.
        const view = ownsMemory(p) ? wasmView(p) : undefined;
        if (view) {
          labels.forEach((l, i) => (l < 0 ? view.fill(0, i * V, (i + 1) * V) : (view[i * V + l]! -= 1)));
          return [tf.mul(p, dy)];
        }
        if (!allRows) p = tf.mul(p, tf.tensor2d(Float32Array.from(labels, (l) => (l < 0 ? 0 : 1)), [N, 1]));
        return [tf.mul(tf.sub(p, tf.oneHot(tf.tensor1d(labels, 'int32'), V)), dy)];
      },
    };
  });
  return op(logits) as tf.Scalar;
}

/**
 * The random draws of one micro-batch, one stream per item keyed by (key, the item's index in
 * the whole micro-batch). A tensor's leading axis holds items (possibly several stacked groups of
 * the same items: row r is item r mod count), and each row takes its numbers from its item's
 * stream, in call order. So an item's dropout masks and Gumbel noise are the same whether it is
 * computed with the whole batch or in a data-parallel worker's share of it.
 * @example const s = new ItemStreams(rng.u32(), 0, 8); dropout(x, 0.1, s);
 */
export class ItemStreams {
  private readonly streams: Rng[];

  constructor(key: number, firstItem: number, count: number) {
    this.streams = Array.from({ length: count }, (_, i) => Rng.from(key, firstItem + i));
  }

  /** The streams of the micro-batch's items `items`, in that order (a data-parallel share's). */
  static of(key: number, items: readonly number[]): ItemStreams {
    const s = new ItemStreams(key, 0, 0);
    s.streams.push(...items.map((i) => Rng.from(key, i)));
    return s;
  }

  /** Fills `out` (the leading axis of `shape`, rows of equal size) row by row from each row's item stream. */
  fill<T extends Float32Array | Int32Array>(shape: readonly number[], out: T, draw: (rng: Rng, out: T, from: number, to: number) => void): T {
    const rows = shape[0]!;
    const rowSize = out.length / rows;
    if (rows % this.streams.length) throw new RangeError(`ItemStreams: ${rows} rows are not whole groups of ${this.streams.length} items`);
    for (let r = 0; r < rows; r++) draw(this.streams[r % this.streams.length]!, out, r * rowSize, (r + 1) * rowSize);
    return out;
  }
}

/** Inverted dropout with masks from `streams`; identity when `p` is 0 or without streams (eval). */
export function dropout(x: tf.Tensor, p: number, streams: ItemStreams | undefined): tf.Tensor {
  if (!streams || p <= 0) return x;
  // 0 where rng.next() < p (compared on the 32-bit draw: the same test without a division), else 1/(1-p)
  const keepBits = new Int32Array(new Float32Array([1 / (1 - p)]).buffer)[0]!;
  // On wasm the mask is drawn straight into its tensor's memory: no JavaScript arrays to copy
  // in and collect.
  const heap = newWasmTensor(x.shape);
  const bits = heap ? new Int32Array(heap.view.buffer, heap.view.byteOffset, x.size) : new Int32Array(x.size);
  streams.fill(x.shape, bits, (rng, out, from, to) => rng.fillMaskBits(out, from, to, p * 4294967296, keepBits));
  return maskedBy(heap?.tensor ?? tf.tensor(new Float32Array(bits.buffer), x.shape))(x);
}

/**
 * `x · mask` whose backward pass keeps the mask only (`dy · mask`, the kernel `tf.mul`'s gradient
 * runs): `tf.mul` would also keep `x`, for a gradient of the mask that nobody asks for.
 */
const maskedBy = (mask: tf.Tensor) =>
  customOp<[tf.Tensor]>((x, save) => {
    save([mask]);
    return { value: tf.mul(x, mask), gradFunc: (dy, [m]) => [tf.mul(dy, m!)] };
  });

/**
 * Forward value `hard − ySoft + ySoft` (as torch's gumbel_softmax computes it), gradient that of
 * `ySoft` alone.
 */
export function straightThrough(hard: tf.Tensor, ySoft: tf.Tensor): tf.Tensor {
  const st = customOp<[tf.Tensor]>((s) => ({
    value: tf.add(tf.sub(hard, s), s),
    gradFunc: (dy) => [dy],
  }));
  return st(ySoft);
}

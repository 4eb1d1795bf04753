/**
 * @file The small building blocks of the reference model (k3m-reference.md 4.1): TF-style
 * LayerNorm (eps inside the square root, biased variance), erf GELU, inverted dropout drawn from
 * per-item streams of our seeded {@link Rng} ({@link ItemStreams}), and the straight-through
 * estimator of the hard Gumbel choice.
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '@k3m-kit/core';
import { customOp } from './custom-grad.ts';

export function layerNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps: number): tf.Tensor {
  const axis = x.rank - 1;
  const mean = tf.mean(x, axis, true);
  const centered = tf.sub(x, mean);
  const variance = tf.mean(tf.square(centered), axis, true);
  return tf.add(tf.mul(tf.div(centered, tf.sqrt(tf.add(variance, eps))), gamma), beta);
}

/** GELU, erf form (M:114-120). */
export function gelu(x: tf.Tensor): tf.Tensor {
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
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

  /** Fills `out` (the leading axis of `shape`, rows of equal size) row by row from each row's item stream. */
  fill(shape: readonly number[], out: Float32Array, draw: (rng: Rng, out: Float32Array, from: number, to: number) => void): Float32Array {
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
  const keep = 1 / (1 - p);
  // rng.next() < p, compared on the 32-bit draw (the same test without a division)
  const below = p * 4294967296;
  const mask = streams.fill(x.shape, new Float32Array(x.size), (rng, out, from, to) => {
    for (let i = from; i < to; i++) out[i] = rng.u32() < below ? 0 : keep;
  });
  return tf.mul(x, tf.tensor(mask, x.shape));
}

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

/**
 * @file The small building blocks of the reference model (k3m-reference.md 4.1): TF-style
 * LayerNorm (eps inside the square root, biased variance), erf GELU, inverted dropout drawn from
 * our seeded {@link Rng}, and the straight-through estimator of the hard Gumbel choice.
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '@k3m-kit/core';
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

/** Inverted dropout with a mask from `rng`; identity when `p` is 0 or no rng is given (eval). */
export function dropout(x: tf.Tensor, p: number, rng: Rng | undefined): tf.Tensor {
  if (!rng || p <= 0) return x;
  const n = x.size;
  const mask = new Float32Array(n);
  const keep = 1 / (1 - p);
  for (let i = 0; i < n; i++) mask[i] = rng.next() < p ? 0 : keep;
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

/**
 * @file Matrix products whose gradients only use plain (untransposed) matmuls.
 *
 * On the wasm back end with its own (XNNPACK) matmul only a plain `A@B` is fast; tfjs-core's
 * stock matmul gradient uses the `transposeA`/`transposeB` flags, which run 10x slower there
 * (platform-notes.md). There `linear` transposes explicitly (a cheap copy) before every product,
 * forward and backward, and `bmm` runs batched products as one depthwise convolution (below).
 * Where the matmul kernel takes the flags at full speed (wasm on BLAS, @k3m-kit/core's
 * blas-matmul.ts), the products pass the flags instead and skip the copies.
 */
import * as tf from '@tensorflow/tfjs';
import { currentBackend } from '@k3m-kit/core/backend';
import { customOp } from './custom-grad.ts';

/** Whether the running back end's matmul takes transposes and batches at full speed. */
export function flagsAreFast(): boolean {
  const c = currentBackend();
  return c !== undefined && c.tfBackend === tf.getBackend() && c.matmul?.kind === 'blas';
}

/**
 * Σ over the rows of `t` [N, d] (a bias's gradient): on BLAS a product with a row of ones,
 * where wasm's `Sum` over the first axis transposes the whole tensor first.
 */
export function sumRows(t: tf.Tensor): tf.Tensor {
  const d = t.shape[t.rank - 1]!;
  const t2 = t.rank === 2 ? t : tf.reshape(t, [-1, d]);
  if (!flagsAreFast()) return tf.sum(t2, 0);
  return tf.reshape(tf.matMul(tf.ones([1, t2.shape[0]!]), t2), [d]);
}

/** y = x·Wᵀ + b for x [N, in], W [out, in] (PyTorch layout), b [out]. */
const linear2d = customOp<[tf.Tensor, tf.Tensor, tf.Tensor]>((x, w, b, save) => {
  save([x, w]);
  const fast = flagsAreFast();
  const value = tf.add(fast ? tf.matMul(x, w, false, true) : tf.matMul(x as tf.Tensor2D, tf.transpose(w as tf.Tensor2D)), b);
  return {
    value,
    gradFunc: (dy, saved) => {
      const g = dy as tf.Tensor2D;
      const [sx, sw] = saved as [tf.Tensor2D, tf.Tensor2D];
      return [tf.matMul(g, sw), fast ? tf.matMul(g, sx, true, false) : tf.matMul(tf.transpose(g), sx), sumRows(g)];
    },
  };
});

/** y = x·Wᵀ (no bias) for x [N, in], W [out, in]. */
const linear2dNoBias = customOp<[tf.Tensor, tf.Tensor]>((x, w, save) => {
  save([x, w]);
  const fast = flagsAreFast();
  return {
    value: fast ? tf.matMul(x, w, false, true) : tf.matMul(x as tf.Tensor2D, tf.transpose(w as tf.Tensor2D)),
    gradFunc: (dy, saved) => {
      const g = dy as tf.Tensor2D;
      const [sx, sw] = saved as [tf.Tensor2D, tf.Tensor2D];
      return [tf.matMul(g, sw), fast ? tf.matMul(g, sx, true, false) : tf.matMul(tf.transpose(g), sx)];
    },
  };
});

/**
 * A PyTorch `nn.Linear` over the last axis of `x` (any rank): `x·Wᵀ + b`, W stored [out, in].
 * @example linear(tf.ones([2, 3, 4]), tf.ones([5, 4]), tf.zeros([5])).shape // [2, 3, 5]
 */
export function linear(x: tf.Tensor, w: tf.Tensor, b?: tf.Tensor): tf.Tensor {
  const inF = x.shape[x.rank - 1]!;
  const outF = w.shape[0]!;
  const x2 = x.rank === 2 ? x : tf.reshape(x, [-1, inF]);
  const y = b ? linear2d(x2, w, b) : linear2dNoBias(x2, w);
  return x.rank === 2 ? y : tf.reshape(y, [...x.shape.slice(0, -1), outF]);
}

/** Batched a·b for a [G, M, K], b [G, K, N]; the gradient transposes explicitly. */
export function bmm(a: tf.Tensor, b: tf.Tensor): tf.Tensor3D {
  return bmmCustom(a, b);
}

/**
 * a [G, M, K] · b [G, K, N] as one depthwise convolution: channels = the G products, filter
 * width = K, so out[m, g, n] = Σₖ a[g, m, k]·b[g, k, n]. wasm's BatchMatMul runs batched products
 * in a plain loop (XNNPACK only takes batch 1); its DepthwiseConv2dNative is XNNPACK's, about 4x
 * faster on attention-sized products (48x32 by 32x48, 128 of them), transposes included ~1.8x.
 */
function batchedProduct(a: tf.Tensor, b: tf.Tensor): tf.Tensor3D {
  const [G, M, K] = a.shape as [number, number, number];
  const N = b.shape[2]!;
  const x = tf.reshape(tf.transpose(a, [1, 2, 0]), [M, 1, K, G]) as tf.Tensor4D;
  const filter = tf.reshape(tf.transpose(b, [1, 0, 2]), [1, K, G, N]) as tf.Tensor4D;
  return tf.transpose(tf.reshape(tf.depthwiseConv2d(x, filter, 1, 'valid'), [M, G, N]), [1, 0, 2]) as tf.Tensor3D;
}

const bmmCustom = customOp<[tf.Tensor, tf.Tensor]>((a, b, save) => {
  save([a, b]);
  if (flagsAreFast()) {
    return {
      value: tf.matMul(a, b),
      gradFunc: (dy, saved) => {
        const [sa, sb] = saved as [tf.Tensor3D, tf.Tensor3D];
        return [tf.matMul(dy, sb, false, true), tf.matMul(sa, dy, true, false)];
      },
    };
  }
  return {
    value: batchedProduct(a, b),
    gradFunc: (dy, saved) => {
      const [sa, sb] = saved as [tf.Tensor3D, tf.Tensor3D];
      return [batchedProduct(dy, tf.transpose(sb, [0, 2, 1])), batchedProduct(tf.transpose(sa, [0, 2, 1]), dy)];
    },
  };
}) as (a: tf.Tensor, b: tf.Tensor) => tf.Tensor3D;

/**
 * @file `UnsortedSegmentSum`, the gradient of `tf.gather` and so of every embedding table.
 *
 * The wasm back end has no such kernel and the cpu one costs about 33 ms per segment
 * (platform-notes.md), i.e. minutes for a 21128-row vocabulary. This kernel accumulates all rows
 * in one pass; `kernels.ts` registers it for both back ends. {@link embedding} is the lookup with
 * PyTorch's `padding_idx`.
 */
import * as tf from '@tensorflow/tfjs';
import { heapView, type WasmBackend } from '@k3m-kit/core/backend';
import { customOp } from './custom-grad.ts';

export type AnyBackend = tf.KernelBackend & {
  readSync(dataId: object): unknown;
  makeOutput?: (shape: number[], dtype: tf.DataType, memoryOffset?: number, values?: Float32Array) => tf.TensorInfo;
  makeTensorInfo?: (shape: number[], dtype: tf.DataType, values?: Float32Array) => tf.TensorInfo;
};

/** Sums rows of x [N, ...inner] into `numSegments` rows (of `out`, zeros) by `segmentIds` [N]; ids out of range are dropped. */
export function segmentSumValues(x: ArrayLike<number>, ids: ArrayLike<number>, inner: number, numSegments: number, out: Float32Array<ArrayBufferLike> = new Float32Array(numSegments * inner)): Float32Array<ArrayBufferLike> {
  for (let i = 0; i < ids.length; i++) {
    const s = ids[i]!;
    if (s < 0 || s >= numSegments) continue;
    const o = s * inner;
    const r = i * inner;
    for (let k = 0; k < inner; k++) out[o + k]! += x[r + k]!;
  }
  return out;
}

/** The one-pass `UnsortedSegmentSum` kernel for `backendName` (wasm or cpu). */
export const unsortedSegmentSumKernel = (backendName: string): tf.KernelFunc => ({ inputs, backend, attrs }) => {
  const { x, segmentIds } = inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
  const { numSegments } = attrs as unknown as { numSegments: number };
  const be = backend as AnyBackend;
  const n = segmentIds.shape.reduce((a, b) => a * b, 1);
  const inner = x.shape.slice(segmentIds.shape.length).reduce((a, b) => a * b, 1);
  if (n * inner !== x.shape.reduce((a, b) => a * b, 1)) throw new Error('UnsortedSegmentSum: segmentIds must cover the leading axes of x');
  const shape = [numSegments, ...x.shape.slice(segmentIds.shape.length)];
  const rows = be.readSync(x.dataId) as Float32Array;
  const ids = be.readSync(segmentIds.dataId) as Int32Array;
  if (backendName === 'wasm') {
    // Summed where the output lies (a vocabulary-sized table: no JavaScript copy to collect).
    // The heap view is taken after the allocation, which may replace the heap.
    const out = be.makeOutput!(shape, 'float32');
    segmentSumValues(rows, ids, inner, numSegments, heapView(be as unknown as WasmBackend, out).fill(0));
    return out;
  }
  return be.makeTensorInfo!(shape, 'float32', segmentSumValues(rows, ids, inner, numSegments));
};

/**
 * Rows of `table` [V, H] at `ids` (int32, any shape) → [...ids.shape, H]. Like PyTorch's
 * `nn.Embedding(padding_idx=p)`, positions holding `paddingIdx` add nothing to the table's gradient.
 */
export function embedding(table: tf.Tensor, ids: tf.Tensor, paddingIdx?: number): tf.Tensor {
  const flat = tf.reshape(ids, [-1]);
  const lookup = customOp<[tf.Tensor]>((t, save) => {
    save([flat]);
    return {
      value: tf.gather(t, flat),
      gradFunc: (dy, saved) => {
        let ids = saved[0]!;
        // An id of -1 falls outside every segment, which is how the padding rows are skipped.
        if (paddingIdx !== undefined) ids = tf.where(tf.equal(ids, paddingIdx), tf.fill(ids.shape, -1, 'int32'), ids);
        return [tf.unsortedSegmentSum(dy, ids as tf.Tensor1D, t.shape[0]!)];
      },
    };
  });
  const out = lookup(table);
  return tf.reshape(out, [...ids.shape, table.shape[1]!]);
}

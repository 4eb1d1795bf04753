/**
 * @file wasm's `Conv2D` and `FusedConv2D` (bias, relu) on the machine's BLAS (blas.ts), NHWC:
 * a 1x1 convolution with stride 1 is one `sgemm` of the input as [N·H·W, Cin] by the filter as
 * [Cin, Cout]; any other is im2col (rows of kh·kw·Cin patch values, in the filter's own
 * [kh, kw, Cin, Cout] order, zeros where the patch leaves the padded input) by the filter, in
 * chunks of output rows so the patch buffer stays bounded. Bias and relu are applied in place on
 * the output. Other activations, NCHW and non-float inputs go to wasm's own kernels.
 */
import * as tf from '@tensorflow/tfjs';
import type { Blas } from './blas.ts';
import { heapIndex, type WasmBackend } from './wasm-heap.ts';


interface ConvAttrs {
  strides: number | [number, number];
  pad: 'same' | 'valid' | number | [[number, number], [number, number], [number, number], [number, number]];
  dataFormat: 'NHWC' | 'NCHW';
  dilations: number | [number, number];
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  activation?: string;
}

/** Floats of im2col patches held at once (16 MiB). */
export const PATCH_BUFFER_FLOATS = 1 << 22;

let patches = new Float32Array(0);

/** The kernel function for `Conv2D` (fused = false) or `FusedConv2D`, falling back to `fallback`. */
export function blasConv2d(blas: Blas, fallback: tf.KernelFunc, fused: boolean): tf.KernelFunc {
  return (args) => {
    const { x, filter, bias, preluActivationWeights } = args.inputs as { x: tf.TensorInfo; filter: tf.TensorInfo; bias?: tf.TensorInfo; preluActivationWeights?: tf.TensorInfo };
    const attrs = args.attrs as unknown as ConvAttrs;
    const activation = fused ? (attrs.activation ?? 'linear') : 'linear';
    if (
      x.dtype !== 'float32' ||
      filter.dtype !== 'float32' ||
      attrs.dataFormat === 'NCHW' ||
      (activation !== 'linear' && activation !== 'relu') ||
      preluActivationWeights ||
      (bias && (bias.shape.length !== 1 || bias.dtype !== 'float32'))
    ) {
      return fallback(args);
    }
    const info = tf.backend_util.computeConv2DInfo(
      x.shape as [number, number, number, number],
      filter.shape as [number, number, number, number],
      attrs.strides,
      attrs.dilations,
      attrs.pad,
      attrs.dimRoundingMode,
    );
    if (bias && bias.shape[0] !== info.outChannels) return fallback(args);
    const backend = args.backend as unknown as WasmBackend;
    const out = backend.makeOutput(info.outShape, 'float32');
    const rows = info.batchSize * info.outHeight * info.outWidth;
    const cout = info.outChannels;
    if (rows * cout === 0) return out;
    const heap = backend.wasm.HEAPF32;
    const offX = heapIndex(backend, x);
    const offF = heapIndex(backend, filter);
    const offC = heapIndex(backend, out);
    const { inHeight: H, inWidth: W, inChannels: cin, filterHeight: kh, filterWidth: kw } = info;
    const K = kh * kw * cin;
    const w = heap.subarray(offF, offF + K * cout);
    const direct = kh === 1 && kw === 1 && info.strideHeight === 1 && info.strideWidth === 1 && info.outHeight === H && info.outWidth === W && info.padInfo.top === 0 && info.padInfo.left === 0;
    if (direct) {
      blas.sgemm(false, false, rows, cout, K, 1, heap.subarray(offX, offX + rows * cin), cin, w, cout, 0, heap.subarray(offC, offC + rows * cout), cout);
    } else {
      const perImage = info.outHeight * info.outWidth;
      const chunk = Math.max(1, Math.floor(PATCH_BUFFER_FLOATS / K));
      if (patches.length < Math.min(chunk, rows) * K) patches = new Float32Array(Math.min(chunk, rows) * K);
      for (let r0 = 0; r0 < rows; r0 += chunk) {
        const r1 = Math.min(rows, r0 + chunk);
        for (let r = r0; r < r1; r++) {
          const n = Math.floor(r / perImage);
          const p = r - n * perImage;
          const oy = Math.floor(p / info.outWidth);
          const ox = p - oy * info.outWidth;
          let at = (r - r0) * K;
          for (let ky = 0; ky < kh; ky++) {
            const iy = oy * info.strideHeight - info.padInfo.top + ky * info.dilationHeight;
            for (let kx = 0; kx < kw; kx++, at += cin) {
              const ix = ox * info.strideWidth - info.padInfo.left + kx * info.dilationWidth;
              if (iy < 0 || iy >= H || ix < 0 || ix >= W) {
                patches.fill(0, at, at + cin);
                continue;
              }
              const src = offX + ((n * H + iy) * W + ix) * cin;
              if (cin >= 16) patches.set(heap.subarray(src, src + cin), at);
              else for (let c = 0; c < cin; c++) patches[at + c] = heap[src + c]!;
            }
          }
        }
        const m = r1 - r0;
        blas.sgemm(false, false, m, cout, K, 1, patches.subarray(0, m * K), K, w, cout, 0, heap.subarray(offC + r0 * cout, offC + r1 * cout), cout);
      }
    }
    if (bias || activation === 'relu') {
      const b = bias ? heap.subarray(heapIndex(backend, bias), heapIndex(backend, bias) + cout) : undefined;
      const relu = activation === 'relu';
      for (let r = 0; r < rows; r++) {
        const o = offC + r * cout;
        for (let c = 0; c < cout; c++) {
          let v = heap[o + c]!;
          if (b) v += b[c]!;
          heap[o + c] = relu && v < 0 ? 0 : v;
        }
      }
    }
    return out;
  };
}

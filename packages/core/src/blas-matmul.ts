/**
 * @file wasm's `BatchMatMul` kernel on the machine's BLAS (blas.ts): every product, transposed
 * or batched, is `cblas_sgemm` on the wasm heap, reading the inputs where they lie and writing
 * the output tensor in place. Batch dimensions broadcast as tfjs-core's do when one side's batch
 * is 1 or both are equal (and the broadcast shape has that many matrices); any other broadcast
 * goes to wasm's own kernel.
 */
import * as tf from '@tensorflow/tfjs';
import type { Blas } from './blas.ts';
import { heapIndex, type WasmBackend } from './wasm-heap.ts';

/** What this kernel needs of tfjs-backend-wasm's `BackendWasm` (its public fields). */

const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** The kernel function, falling back to `fallback` (wasm's own) where BLAS does not apply. */
export function blasBatchMatMul(blas: Blas, fallback: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const { transposeA, transposeB } = args.attrs as unknown as { transposeA: boolean; transposeB: boolean };
    const backend = args.backend as unknown as WasmBackend;
    if (a.dtype !== 'float32' || b.dtype !== 'float32' || a.shape.length < 2 || b.shape.length < 2) return fallback(args);
    const ra = a.shape.length;
    const rb = b.shape.length;
    const m = transposeA ? a.shape[ra - 1]! : a.shape[ra - 2]!;
    const k = transposeA ? a.shape[ra - 2]! : a.shape[ra - 1]!;
    const kb = transposeB ? b.shape[rb - 1]! : b.shape[rb - 2]!;
    const n = transposeB ? b.shape[rb - 2]! : b.shape[rb - 1]!;
    if (k !== kb) {
      throw new Error(`Error in matMul: inner shapes (${k}) and (${kb}) of Tensors with shapes ${a.shape} and ${b.shape} and transposeA=${transposeA} and transposeB=${transposeB} must match.`);
    }
    const outerA = a.shape.slice(0, -2);
    const outerB = b.shape.slice(0, -2);
    const ga = sizeOf(outerA);
    const gb = sizeOf(outerB);
    const outer = tf.broadcast_util.assertAndGetBroadcastShape(outerA, outerB);
    const g = Math.max(ga, gb);
    // One side's batch whole, the other's the same or a single matrix; anything else (e.g.
    // [2, 1] against [1, 2]) to wasm's own kernel.
    if ((ga !== gb && ga !== 1 && gb !== 1) || sizeOf(outer) !== g) return fallback(args);
    const outShape = [...outer, m, n];
    const out = backend.makeOutput(outShape, 'float32');
    if (m * n === 0) return out;
    // After makeOutput: an allocation can grow the wasm memory and replace HEAPF32.
    const heap = backend.wasm.HEAPF32;
    const offA = heapIndex(backend, a);
    const offB = heapIndex(backend, b);
    const offC = heapIndex(backend, out);
    const sa = ga === 1 ? 0 : m * k;
    const sb = gb === 1 ? 0 : k * n;
    const lda = transposeA ? m : k;
    const ldb = transposeB ? k : n;
    if (k === 0) {
      heap.fill(0, offC, offC + g * m * n);
      return out;
    }
    for (let i = 0; i < g; i++) {
      const pa = offA + i * sa;
      const pb = offB + i * sb;
      const pc = offC + i * m * n;
      blas.sgemm(transposeA, transposeB, m, n, k, 1, heap.subarray(pa, pa + m * k), lda, heap.subarray(pb, pb + k * n), ldb, 0, heap.subarray(pc, pc + m * n), n);
    }
    return out;
  };
}

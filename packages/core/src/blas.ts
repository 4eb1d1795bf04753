/**
 * @file Matrix products on the machine's BLAS (OpenBLAS), for the wasm back end.
 *
 * wasm's matmul is XNNPACK with 128-bit SIMD and no FMA (about 28 GFLOP/s a core here); the
 * original K3M's PyTorch calls OpenBLAS, which uses the CPU's widest vectors (about 100 GFLOP/s a
 * core here, AVX-512). koffi (an FFI with prebuilt binaries in its npm package, nothing built or
 * downloaded at install) loads the system's libopenblas and calls `cblas_sgemm` on pointers into
 * the wasm heap, so no tensor is copied. Optional like the tfjs-node back ends: without koffi or
 * OpenBLAS, or with `K3M_BLAS=off`, wasm keeps its own kernels and the back-end line says so.
 *
 * One BLAS thread per thread that calls it: the stages parallelise over worker threads already.
 */
import { createRequire } from 'node:module';

/** `K3M_BLAS`: unset tries {@link OPENBLAS_NAMES}; `off` disables; anything else is the library to load. */
export const BLAS_ENV = 'K3M_BLAS';
/** The shared-library names tried, in order, when `K3M_BLAS` is unset. */
export const OPENBLAS_NAMES = Object.freeze(['libopenblas.so.0', 'libopenblas.so', 'libopenblas.0.dylib', 'libopenblas.dylib']);

/** C `float *` into a heap: the typed array's memory is passed, not copied. */
type F32 = Float32Array;
/** Row-major `C = alpha·op(A)·op(B) + beta·C` (CBLAS). */
export type Sgemm = (transA: boolean, transB: boolean, m: number, n: number, k: number, alpha: number, a: F32, lda: number, b: F32, ldb: number, beta: number, c: F32, ldc: number) => void;

/** `y += alpha·x` over `n` elements (CBLAS, unit strides). */
export type Saxpy = (n: number, alpha: number, x: F32, y: F32) => void;

export interface Blas {
  /** The library as it names itself, e.g. `OpenBLAS 0.3.21 DYNAMIC_ARCH ... Cooperlake`. */
  name: string;
  /** The file loaded. */
  library: string;
  sgemm: Sgemm;
  saxpy: Saxpy;
}

export type BlasStatus = { blas: Blas } | { blas?: undefined; reason: string };

let status: BlasStatus | undefined;

const CBLAS_ROW_MAJOR = 101;
const CBLAS_NO_TRANS = 111;
const CBLAS_TRANS = 112;

function load(): BlasStatus {
  const env = process.env[BLAS_ENV];
  if (env === 'off') return { reason: `${BLAS_ENV}=off` };
  let koffi: typeof import('koffi');
  try {
    koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
  } catch (e) {
    return { reason: `koffi not installed (${(e as Error).message.split('\n')[0]})` };
  }
  const names = env ? [env] : OPENBLAS_NAMES;
  const errors: string[] = [];
  for (const library of names) {
    let lib: ReturnType<typeof koffi.load>;
    try {
      lib = koffi.load(library);
    } catch (e) {
      errors.push(`${library}: ${(e as Error).message.split('\n')[0]}`);
      continue;
    }
    try {
      const raw = lib.func('void cblas_sgemm(int, int, int, int, int, int, float, const float *, int, const float *, int, float, _Inout_ float *, int)');
      const name = tryCall(() => (lib.func('const char *openblas_get_config()')() as string).replace(/\s+/g, ' ').trim()) ?? library;
      // One thread per caller; the library's own pool would compete with our worker threads.
      tryCall(() => lib.func('void openblas_set_num_threads(int)')(1));
      const sgemm: Sgemm = (transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) =>
        raw(CBLAS_ROW_MAJOR, transA ? CBLAS_TRANS : CBLAS_NO_TRANS, transB ? CBLAS_TRANS : CBLAS_NO_TRANS, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
      const rawSaxpy = lib.func('void cblas_saxpy(int, float, const float *, int, _Inout_ float *, int)');
      const saxpy: Saxpy = (n, alpha, x, y) => rawSaxpy(n, alpha, x, 1, y, 1);
      return { blas: { name, library, sgemm, saxpy } };
    } catch (e) {
      errors.push(`${library}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  return { reason: env ? `${BLAS_ENV}=${env}: ${errors.join('; ')}` : `no OpenBLAS found (${errors.join('; ')})` };
}

function tryCall<T>(f: () => T): T | undefined {
  try {
    return f();
  } catch {
    return undefined;
  }
}

/**
 * The machine's BLAS, loaded once per thread, or why there is none.
 * @example const s = blasStatus(); if (s.blas) s.blas.sgemm(false, false, 2, 2, 2, 1, a, 2, b, 2, 0, c, 2);
 */
export function blasStatus(): BlasStatus {
  status ??= load();
  return status;
}

/** Below this many elements a JavaScript loop beats the FFI call. */
const ADD_ON_BLAS_FROM = 4096;

/**
 * `y += x` element by element in float32 (the same bits as a JavaScript loop: a float32 sum is
 * exact in double before its one rounding, and BLAS's `1·x + y` rounds once too), on the BLAS's
 * vector `saxpy` for long arrays (a scalar loop was a tenth of a training step). Either array may live in a wasm
 * heap or a SharedArrayBuffer.
 * @example addFloats(stepGradient.subarray(o, o + n), shareGradient)
 */
export function addFloats(y: Float32Array, x: Float32Array): void {
  const n = x.length;
  if (y.length !== n) throw new RangeError(`addFloats: ${y.length} and ${n} elements`);
  const blas = n >= ADD_ON_BLAS_FROM ? blasStatus().blas : undefined;
  if (blas) blas.saxpy(n, 1, x, y);
  else for (let i = 0; i < n; i++) y[i]! += x[i]!;
}

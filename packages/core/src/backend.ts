/**
 * @file The one place a TensorFlow.js back end is chosen (design.md section 8): tfjs-node-gpu,
 * then tfjs-node, then wasm, then cpu, unless `--backend` names one. The node back ends are
 * optional dependencies that cannot install where libtensorflow cannot be downloaded, so they
 * are imported lazily and their absence is normal. Imported as `@k3m-kit/core/backend`.
 */
import * as tf from '@tensorflow/tfjs';
import { UsageError } from './errors.ts';
import { blasStatus } from './blas.ts';
import { blasBatchMatMul } from './blas-matmul.ts';
import { blasConv2d } from './blas-conv.ts';

export { addFloats, BLAS_ENV, blasStatus, type Blas, type BlasStatus } from './blas.ts';
export { heapView, newWasmTensor, ownsMemory, wasmView, type WasmBackend } from './wasm-heap.ts';

/** Back ends in preference order, with the package that provides each. */
export const BACKENDS = Object.freeze({
  'tensorflow-gpu': { pkg: '@tensorflow/tfjs-node-gpu', tfName: 'tensorflow' },
  tensorflow: { pkg: '@tensorflow/tfjs-node', tfName: 'tensorflow' },
  wasm: { pkg: '@tensorflow/tfjs-backend-wasm', tfName: 'wasm' },
  cpu: { pkg: '@tensorflow/tfjs-backend-cpu', tfName: 'cpu' },
});
export type BackendName = keyof typeof BACKENDS;

export interface BackendChoice {
  /** Our name: `tensorflow-gpu`, `tensorflow`, `wasm` or `cpu`. */
  name: BackendName;
  /** What `tf.getBackend()` reports. */
  tfBackend: string;
  /** Back ends tried before this one, with why they were skipped. */
  skipped: { name: BackendName; reason: string }[];
  /**
   * wasm only: its matmul and convolution kernels. `blas` names the library (blas.ts) whose
   * `sgemm` runs `BatchMatMul`, `Conv2D` and `FusedConv2D`; `xnnpack` is wasm's own, with why
   * BLAS is not used.
   */
  matmul?: { kind: 'blas'; name: string } | { kind: 'xnnpack'; reason: string };
}

let current: BackendChoice | undefined;

async function tryLoad(name: BackendName): Promise<string | undefined> {
  const { pkg, tfName } = BACKENDS[name];
  try {
    await import(pkg);
  } catch (e) {
    return `${pkg} not installed (${(e as Error).message.split('\n')[0]})`;
  }
  if (name === 'tensorflow-gpu') {
    // tfjs-node-gpu registers 'tensorflow' even without a usable GPU; that is still its choice.
  }
  const ok = await tf.setBackend(tfName);
  if (!ok) return `tf.setBackend('${tfName}') failed`;
  await tf.ready();
  return undefined;
}

/**
 * Selects and initialises the back end once per process. `preferred` (from `--backend`) must
 * load or it is an error; otherwise the first back end that loads wins.
 * @example const { name } = await selectBackend(); // 'wasm' on a machine without libtensorflow
 */
export async function selectBackend(preferred?: string): Promise<BackendChoice> {
  if (preferred !== undefined && !(preferred in BACKENDS)) {
    throw new UsageError(`--backend ${preferred}: must be one of ${Object.keys(BACKENDS).join(', ')}`);
  }
  if (current && (preferred === undefined || preferred === current.name)) return current;
  const order = (preferred ? [preferred] : Object.keys(BACKENDS)) as BackendName[];
  const skipped: BackendChoice['skipped'] = [];
  for (const name of order) {
    const reason = await tryLoad(name);
    if (reason === undefined) {
      current = { name, tfBackend: tf.getBackend(), skipped };
      if (name === 'wasm') current.matmul = useBlasMatmul();
      return current;
    }
    if (preferred) throw new UsageError(`--backend ${preferred}: ${reason}`);
    skipped.push({ name, reason });
  }
  throw new Error(`no TensorFlow.js back end could start: ${skipped.map((s) => `${s.name}: ${s.reason}`).join('; ')}`);
}

/** The back end this thread's {@link selectBackend} started, if any. */
export function currentBackend(): BackendChoice | undefined {
  return current;
}

/** The kernels BLAS replaces on wasm, and wasm's own configs of them, kept to switch back. */
const BLAS_KERNELS = ['BatchMatMul', 'Conv2D', 'FusedConv2D'] as const;
let stockKernels: Map<string, tf.KernelConfig> | undefined;

function registerWasm(name: string, config: tf.KernelConfig): void {
  if (tf.getKernel(name, 'wasm')) tf.unregisterKernel(name, 'wasm');
  tf.registerKernel(config);
}

/**
 * Replaces wasm's `BatchMatMul`, `Conv2D` and `FusedConv2D` with the BLAS ones when a BLAS loads
 * (per thread); each falls back to wasm's own kernel for what it does not cover.
 */
function useBlasMatmul(): NonNullable<BackendChoice['matmul']> {
  const s = blasStatus();
  if (!s.blas) return { kind: 'xnnpack', reason: s.reason };
  const blas = s.blas;
  if (!stockKernels) {
    if (!tf.getKernel('BatchMatMul', 'wasm')) return { kind: 'xnnpack', reason: 'wasm has no BatchMatMul kernel to replace' };
    stockKernels = new Map(BLAS_KERNELS.flatMap((n) => (tf.getKernel(n, 'wasm') ? [[n, tf.getKernel(n, 'wasm')]] : [])));
  }
  const make = { BatchMatMul: (f: tf.KernelFunc) => blasBatchMatMul(blas, f), Conv2D: (f: tf.KernelFunc) => blasConv2d(blas, f, false), FusedConv2D: (f: tf.KernelFunc) => blasConv2d(blas, f, true) };
  for (const [name, config] of stockKernels) registerWasm(name, { ...config, kernelFunc: make[name as keyof typeof make](config.kernelFunc) });
  return { kind: 'blas', name: blas.name };
}

/**
 * Switches the running wasm back end between the BLAS kernels and its own (XNNPACK), e.g. for
 * tests of both paths in one process; returns the new state (also in {@link currentBackend}).
 * @example setWasmKernels('xnnpack'); // as with K3M_BLAS=off
 */
export function setWasmKernels(kind: 'blas' | 'xnnpack'): NonNullable<BackendChoice['matmul']> {
  if (!current || current.name !== 'wasm') throw new Error('setWasmKernels: the running back end is not wasm');
  if (kind === 'blas') {
    current.matmul = useBlasMatmul();
  } else {
    for (const [name, config] of stockKernels ?? []) registerWasm(name, config);
    current.matmul = { kind: 'xnnpack', reason: 'setWasmKernels' };
  }
  return current.matmul;
}

/**
 * One line for logs and reports, e.g.
 * `backend: wasm, matmul on OpenBLAS 0.3.21 ... (skipped tensorflow-gpu, tensorflow: not installed)`.
 */
export function describeBackend(c: BackendChoice): string {
  const matmul = !c.matmul ? '' : c.matmul.kind === 'blas' ? `, matmul on ${c.matmul.name}` : `, matmul on XNNPACK (${c.matmul.reason})`;
  return `backend: ${c.name}${matmul}${c.skipped.length ? ` (skipped ${c.skipped.map((s) => s.name).join(', ')}: not installed)` : ''}`;
}

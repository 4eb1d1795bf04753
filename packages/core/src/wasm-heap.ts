/**
 * @file The wasm back end's memory, for code that reads or writes tensors where they lie: its
 * float32 tensors are ranges of one heap (`HEAPF32`), found through the back end's public
 * `dataIdMap`. A view is valid until the next allocation, which may grow (replace) the heap.
 */
import * as tf from '@tensorflow/tfjs';

/** What this module needs of tfjs-backend-wasm's `BackendWasm` (its public fields). */
export interface WasmBackend {
  wasm: { HEAPF32: Float32Array };
  dataIdMap: { get(dataId: object): { memoryOffset: number | null; refCount: number } | undefined };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
}

/** The heap index (in floats) where a float32 tensor of the wasm back end starts. */
export function heapIndex(backend: WasmBackend, t: tf.TensorInfo): number {
  return backend.dataIdMap.get(t.dataId)!.memoryOffset! >>> 2;
}

/** The values of a float32 tensor of the wasm back end (a kernel's input or output) as a view of its heap; valid until the next allocation. */
export function heapView(backend: WasmBackend, t: tf.TensorInfo): Float32Array {
  const at = heapIndex(backend, t);
  return backend.wasm.HEAPF32.subarray(at, at + t.shape.reduce((a, b) => a * b, 1));
}

/**
 * A float32 tensor's values as a view of the wasm heap (no copy), or undefined when the running
 * back end is not wasm or the tensor is not float32.
 */
export function wasmView(t: tf.Tensor): Float32Array | undefined {
  if (tf.getBackend() !== 'wasm' || t.dtype !== 'float32') return undefined;
  const backend = tf.backend() as unknown as WasmBackend;
  const data = backend.dataIdMap.get(t.dataId);
  if (!data || data.memoryOffset === null) return undefined;
  const at = data.memoryOffset >>> 2;
  return backend.wasm.HEAPF32.subarray(at, at + t.size);
}

/** Whether `t`'s memory is its alone (no tensor shares it), so it may be written in place. */
export function ownsMemory(t: tf.Tensor): boolean {
  const backend = tf.backend() as unknown as WasmBackend;
  return tf.getBackend() === 'wasm' && backend.dataIdMap.get(t.dataId)?.refCount === 1;
}

/**
 * A new float32 tensor of `shape` in the wasm heap and a view of its (uninitialised) values, for
 * code that writes a tensor's values where they will lie instead of copying them in from a
 * JavaScript array; undefined when the running back end is not wasm. Fill the view before any
 * other allocation (which may replace the heap).
 * @example const t = newWasmTensor([2, 3]); if (t) t.view.fill(0);
 */
export function newWasmTensor(shape: number[]): { tensor: tf.Tensor; view: Float32Array } | undefined {
  if (tf.getBackend() !== 'wasm') return undefined;
  const backend = tf.backend() as unknown as WasmBackend;
  const info = backend.makeOutput(shape, 'float32');
  return { tensor: tf.engine().makeTensorFromTensorInfo(info), view: heapView(backend, info) };
}

/**
 * @file The one place kernels of TensorFlow.js back ends are replaced, by {@link registerKernels}
 * as soon as a back end is up:
 *
 * - `UnsortedSegmentSum` (wasm, cpu): the one-pass kernel of `segment-sum.ts`.
 * - `Identity` (wasm): shares the input's memory instead of copying it. The engine clones every
 *   tensor it saves for the backward pass (about 2,000 per k3m-small step), and wasm's stock
 *   Identity copies each one; tensors are immutable (a variable's `assign` takes new memory), so
 *   a reference-counted share is safe, as the cpu back end's Identity and wasm's own Reshape do.
 *
 * and the gradients of shape-only kernels (`Add`, `Reshape`, ...) are made to save shapes, not
 * tensors (`shape-saves.ts`).
 */
import * as tf from '@tensorflow/tfjs';
import { unsortedSegmentSumKernel, type AnyBackend } from './segment-sum.ts';
import { saveShapesOnly } from './shape-saves.ts';

const sharedIdentity: tf.KernelFunc = ({ inputs, backend }) => {
  const { x } = inputs as { x: tf.TensorInfo };
  (backend as AnyBackend & { incRef(dataId: object): void }).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
};

let replaced = false;

/** Replaces the kernels above (idempotent). */
export function replaceKernels(): void {
  if (replaced) return;
  replaced = true;
  const replace = (kernelName: string, backendName: string, kernelFunc: tf.KernelFunc) => {
    if (tf.getKernel(kernelName, backendName)) tf.unregisterKernel(kernelName, backendName);
    tf.registerKernel({ kernelName, backendName, kernelFunc });
  };
  for (const backendName of ['wasm', 'cpu']) replace('UnsortedSegmentSum', backendName, unsortedSegmentSumKernel(backendName));
  replace('Identity', 'wasm', sharedIdentity);
}

/** Registers the replacement kernels and the shape-only gradients (idempotent). */
export function registerKernels(): void {
  replaceKernels();
  saveShapesOnly();
}

/**
 * @file The back end of k3m-model: core's `selectBackend` (the one module that
 * chooses back ends, design.md section 8) plus our kernel fixes for wasm and cpu
 * (src/ops/segment-sum.ts), registered as soon as a back end is up.
 */
import { describeBackend, selectBackend, type BackendChoice } from '@k3m-kit/core/backend';
import { registerKernels } from './ops/kernels.ts';

export { BACKENDS, describeBackend, type BackendChoice, type BackendName } from '@k3m-kit/core/backend';

/**
 * Starts the preferred (or first available) back end and registers the model's kernels.
 * @example const b = await startBackend('wasm'); console.error(describeBackend(b));
 */
export async function startBackend(preferred?: string): Promise<BackendChoice> {
  const choice = await selectBackend(preferred);
  registerKernels();
  return choice;
}

/** The one line printed at start-up and stored in reports. */
export const backendLine = (c: BackendChoice): string => describeBackend(c);

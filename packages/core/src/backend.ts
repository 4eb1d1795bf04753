/**
 * @file The one place a TensorFlow.js back end is chosen (design.md section 8): tfjs-node-gpu,
 * then tfjs-node, then wasm, then cpu, unless `--backend` names one. The node back ends are
 * optional dependencies that cannot install where libtensorflow cannot be downloaded, so they
 * are imported lazily and their absence is normal. Imported as `@k3m-kit/core/backend`.
 */
import * as tf from '@tensorflow/tfjs';
import { UsageError } from './errors.ts';

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
      return current;
    }
    if (preferred) throw new UsageError(`--backend ${preferred}: ${reason}`);
    skipped.push({ name, reason });
  }
  throw new Error(`no TensorFlow.js back end could start: ${skipped.map((s) => `${s.name}: ${s.reason}`).join('; ')}`);
}

/** One line for logs and reports, e.g. `backend: wasm (skipped tensorflow-gpu, tensorflow)`. */
export function describeBackend(c: BackendChoice): string {
  return `backend: ${c.name}${c.skipped.length ? ` (skipped ${c.skipped.map((s) => s.name).join(', ')}: not installed)` : ''}`;
}

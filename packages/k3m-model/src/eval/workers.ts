/**
 * @file The second process of a two-process evaluation: TensorFlow.js on wasm runs one thread
 * per process, so the model without knowledge is evaluated in a child (model-worker.ts, its own
 * wasm instance, so its own core) while the parent evaluates the model with knowledge.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ResolvedEvaluateConfig } from './config.ts';
import type { ModelOutcome } from './model-run.ts';
import type { ModelKey } from './results.ts';

/**
 * Runs `evaluateModel(config, role)` in a child process started with the tsx loader; resolves
 * with the outcome it prints as its last JSON line.
 */
export function runModelInChild(c: ResolvedEvaluateConfig, role: ModelKey): Promise<ModelOutcome> {
  const worker = fileURLToPath(new URL('./model-worker.ts', import.meta.url));
  // TensorFlow.js and its wasm back end are loaded by Node before tsx is registered, as the bin
  // does: through tsx's loader the same bundles take more memory; the TypeScript imports reuse them.
  const preload = ['@tensorflow/tfjs', '@tensorflow/tfjs-backend-wasm', 'tsx'].flatMap((m) => ['--import', import.meta.resolve(m)]);
  const child = spawn(process.execPath, [...preload, worker], { stdio: ['pipe', 'pipe', 'inherit'] });
  child.stdin.end(JSON.stringify({ config: c, role }));
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`evaluation worker for ${role} exited with code ${code}`));
      try {
        resolve(JSON.parse(out.slice(out.lastIndexOf('\n{') + 1)) as ModelOutcome);
      } catch (e) {
        reject(new Error(`evaluation worker for ${role} sent no result (${(e as Error).message})`));
      }
    });
  });
}

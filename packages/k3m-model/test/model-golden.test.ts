/**
 * Golden parity (k3m-golden README Part B): the golden weights and batch through our model in
 * fusion modes 0, 1 (fixed Gumbel noise) and 2; every intermediate, the losses and every
 * parameter gradient against the original PyTorch outputs.
 * Tolerances: intermediates max|Δ| ≤ 1e-4·max(1, max|ref|); losses 1e-4 relative; gradients
 * max|Δ| ≤ 1e-3·max|ref| + 1e-6 per tensor (the 19 exactly-zero ones: absolute 1e-6).
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { readSafetensors, toFloat32 } from '@k3m-kit/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { blasStatus, setWasmKernels } from '@k3m-kit/core/backend';
import { startBackend } from '../src/backend.ts';
import { forward, type FusionMode, ORIGINAL_BEHAVIOUR } from '../src/model/k3m.ts';
import { K3mParams } from '../src/model/params.ts';
import { goldenDir, loadGoldenBatch, loadGoldenConfig, loadGradNone } from '../src/testing.ts';
import type { Batch } from '../src/data/batch.ts';
import type { ModelConfig } from '../src/model/config.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const dir = goldenDir(repoRoot);
const GRAD_RTOL = 1e-4;

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}
function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

// Both matmul paths of the wasm back end: OpenBLAS (the default where it is installed) and
// wasm's own XNNPACK kernels (the fallback, K3M_BLAS=off).
const blas = blasStatus();
// Without OpenBLAS the BLAS pass cannot run: say why (in CI the skip itself fails the run).
if (!blas.blas) console.warn(`SKIP golden parity on wasm's BLAS kernels: ${blas.reason}`);
for (const kernels of ['blas', 'xnnpack'] as const) {
describe.skipIf(!dir || (kernels === 'blas' && !blas.blas))(`golden parity with the original PyTorch K3M (wasm: ${kernels} kernels)`, () => {
  let config: ModelConfig;
  let params: K3mParams;
  let batch: Batch;
  beforeAll(async () => {
    const backend = await startBackend(process.env.K3M_TEST_BACKEND ?? 'wasm');
    if (backend.name === 'wasm') expect(setWasmKernels(kernels).kind).toBe(kernels);
    config = await loadGoldenConfig(dir!);
    params = K3mParams.fromStateDict(config, (await readSafetensors(join(dir!, 'weights.safetensors'))).tensors);
    batch = await loadGoldenBatch(dir!);
  });

  for (const mode of [0, 1, 2] as FusionMode[]) {
    it(`mode ${mode}: every intermediate and the four losses`, async () => {
      const golden = (await readSafetensors(join(dir!, `outputs_mode${mode}.safetensors`))).tensors;
      const noise = mode === 1 ? (await readSafetensors(join(dir!, 'gumbel_noise.safetensors'))).tensors : undefined;
      const res = tf.tidy(() => {
        const gumbelNoise = noise && {
          v: tf.tensor(toFloat32(noise.get('gumbel_noise_v')!), noise.get('gumbel_noise_v')!.shape),
          t: tf.tensor(toFloat32(noise.get('gumbel_noise_t')!), noise.get('gumbel_noise_t')!.shape),
          pv: tf.tensor(toFloat32(noise.get('gumbel_noise_pv')!), noise.get('gumbel_noise_pv')!.shape),
        };
        const r = forward(params, batch, { fusionMode: mode, outputs: 'all', gumbelNoise, fixes: ORIGINAL_BEHAVIOUR });
        const vals: Record<string, { shape: number[]; data: Float32Array }> = {};
        for (const [k, v] of Object.entries({ ...r.outputs, ...r.losses, loss_sum: r.loss! })) vals[k] = { shape: v.shape, data: v.dataSync() as Float32Array };
        return vals;
      });
      const bad: string[] = [];
      for (const [name, ref] of golden) {
        const got = res[name];
        expect(got, name).toBeDefined();
        const want = toFloat32(ref);
        expect(got!.data.length, name).toBe(want.length);
        const d = maxDiff(got!.data, want);
        const tol = name.includes('loss') ? 1e-4 * Math.abs(want[0]!) : 1e-4 * Math.max(1, maxAbs(want));
        if (!(d <= tol)) bad.push(`${name}: max|Δ| ${d.toExponential(2)} > ${tol.toExponential(2)}`);
      }
      expect(bad).toEqual([]);
    });

    it(`mode ${mode}: the gradient of the summed loss for every parameter`, async () => {
      const golden = (await readSafetensors(join(dir!, `grads_mode${mode}.safetensors`))).tensors;
      const none = new Set((await loadGradNone(dir!))[String(mode)]);
      const noise = mode === 1 ? (await readSafetensors(join(dir!, 'gumbel_noise.safetensors'))).tensors : undefined;
      const names = [...params.vars.keys()];
      const byVar = new Map(names.map((n) => [params.get(n).name, n]));
      const grads = new Map<string, Float32Array>();
      tf.tidy(() => {
        const gumbelNoise = noise && {
          v: tf.tensor(toFloat32(noise.get('gumbel_noise_v')!), noise.get('gumbel_noise_v')!.shape),
          t: tf.tensor(toFloat32(noise.get('gumbel_noise_t')!), noise.get('gumbel_noise_t')!.shape),
          pv: tf.tensor(toFloat32(noise.get('gumbel_noise_pv')!), noise.get('gumbel_noise_pv')!.shape),
        };
        const { grads: g } = tf.variableGrads(
          () => forward(params, batch, { fusionMode: mode, outputs: 'all', gumbelNoise, fixes: ORIGINAL_BEHAVIOUR }).loss!,
          names.map((n) => params.get(n)),
        );
        for (const [v, t] of Object.entries(g)) if (t) grads.set(byVar.get(v)!, t.dataSync() as Float32Array);
      });
      expect(golden.size).toBe(names.length);
      const bad: string[] = [];
      let worst = 0;
      for (const [name, ref] of golden) {
        const want = toFloat32(ref);
        const got = grads.get(name);
        if (none.has(name)) {
          if (got && maxAbs(got) !== 0) bad.push(`${name}: expected no gradient`);
          continue;
        }
        if (!got) {
          bad.push(`${name}: no gradient`);
          continue;
        }
        const d = maxDiff(got, want);
        const scale = maxAbs(want);
        // The 19 exactly-zero gradients hold float32 noise only (README): absolute tolerance.
        const tol = scale < 1e-8 ? 1e-6 : GRAD_RTOL * scale;
        if (scale >= 1e-8) worst = Math.max(worst, d / scale);
        if (!(d <= tol)) bad.push(`${name}: max|Δ| ${d.toExponential(2)} > ${tol.toExponential(2)}`);
      }
      console.log(`mode ${mode}: worst gradient error ${worst.toExponential(2)} of the tensor's max`);
      expect(bad).toEqual([]);
    });
  }
});
}

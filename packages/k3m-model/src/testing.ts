/**
 * @file Fixtures for tests and the parity tool only: the golden files of
 * `../shared/data/k3m-golden` (k3m-golden/README.md Part B) as a {@link Batch}, config and
 * tensors, and a synthetic batch generator for training tests.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { readSafetensors } from '@k3m-kit/core';
import type { Batch } from './data/batch.ts';
import { batchFromTensors } from './model/batch-tensors.ts';
import { parseModelConfig, type ModelConfig } from './model/config.ts';
import { Rng } from '@k3m-kit/core';

export { batchFromTensors };

/** `<repoRoot>/../shared/data/k3m-golden`, or undefined when absent (tests then skip). */
export function goldenDir(repoRoot: string): string | undefined {
  const d = resolve(repoRoot, '../shared/data/k3m-golden');
  if (existsSync(join(d, 'weights.safetensors'))) return d;
  // Tests skip without it; say why (in CI the skip itself fails the run).
  console.warn(`SKIP golden parity tests: ${d}/weights.safetensors not found (the original PyTorch K3M's fixtures, ../shared/data/k3m-golden)`);
  return undefined;
}

export async function loadGoldenConfig(dir: string): Promise<ModelConfig> {
  return parseModelConfig(JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')));
}

/** The golden `grad_none` lists: parameters without a gradient per fusion mode. */
export async function loadGradNone(dir: string): Promise<Record<string, string[]>> {
  return (JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as { grad_none: Record<string, string[]> }).grad_none;
}

export async function loadGoldenBatch(dir: string): Promise<Batch> {
  return batchFromTensors((await readSafetensors(join(dir, 'inputs.safetensors'))).tensors);
}

/**
 * A random but well-formed batch (titles with 15% labels, PV `p:v;` pairs with masked values,
 * regions with 15% labels), for training tests that must not depend on the data path.
 */
export function syntheticBatch(seed: number, o: { batchSize: number; vocabSize: number; featureDim: number; numClasses: number; regions?: number; titleLen?: number; pvLen?: number }): Batch {
  const rng = new Rng(seed);
  const B = o.batchSize;
  const Lt = o.titleLen ?? 12;
  const Lp = o.pvLen ?? 16;
  const R = o.regions ?? 6;
  const P = 10;
  const word = () => 200 + rng.int(o.vocabSize - 200);
  const b: Batch = {
    shape: { batchSize: B, titleLen: Lt, pvLen: Lp, regions: R, featureDim: o.featureDim, numClasses: o.numClasses, maxPairs: P },
    inputIds: new Int32Array(B * Lt),
    inputMask: new Int32Array(B * Lt),
    segmentIds: new Int32Array(B * Lt),
    lmLabelIds: new Int32Array(B * Lt).fill(-1),
    isNext: new Int32Array(B),
    inputIdsPv: new Int32Array(B * Lp),
    inputMaskPv: new Int32Array(B * Lp),
    segmentIdsPv: new Int32Array(B * Lp),
    lmLabelIdsPv: new Int32Array(B * Lp).fill(-1),
    isNextPvV: new Int32Array(B),
    isNextPvT: new Int32Array(B),
    imageFeat: new Float32Array(B * (R + 1) * o.featureDim),
    imageLoc: new Float32Array(B * (R + 1) * 5),
    imageTarget: new Float32Array(B * R * o.numClasses),
    imageLabel: new Int32Array(B * R).fill(-1),
    imageMask: new Int32Array(B * (R + 1)),
    indexP: new Int32Array(B * P * 2),
    indexV: new Int32Array(B * P * 2),
    imageIds: Array.from({ length: B }, (_, i) => `syn${seed}_${i}`),
  };
  for (let i = 0; i < B; i++) {
    const n = 3 + rng.int(Lt - 4);
    b.inputIds[i * Lt] = 101;
    for (let k = 1; k <= n; k++) {
      const id = word();
      b.inputIds[i * Lt + k] = id;
      if (rng.next() < 0.15) {
        b.lmLabelIds[i * Lt + k] = id;
        b.inputIds[i * Lt + k] = 103;
      }
    }
    b.inputIds[i * Lt + n + 1] = 102;
    b.inputMask.fill(1, i * Lt, i * Lt + n + 2);
    let pos = 1;
    b.inputIdsPv[i * Lp] = 101;
    for (let j = 0; pos + 5 < Lp - 1 && j < P; j++) {
      const start = pos;
      b.inputIdsPv[i * Lp + pos++] = word();
      const colon = pos;
      b.inputIdsPv[i * Lp + pos++] = 131;
      for (let k = 0; k < 2; k++) {
        const id = word();
        b.inputIdsPv[i * Lp + pos] = j > 0 ? 103 : id;
        if (j > 0) b.lmLabelIdsPv[i * Lp + pos] = id;
        pos++;
      }
      b.inputIdsPv[i * Lp + pos] = 132;
      b.indexP.set([start, colon], (i * P + j) * 2);
      b.indexV.set([colon + 1, pos], (i * P + j) * 2);
      pos++;
    }
    b.inputIdsPv[i * Lp + pos] = 102;
    b.inputMaskPv.fill(1, i * Lp, i * Lp + pos + 1);
    const nb = 1 + rng.int(R);
    b.imageMask.fill(1, i * (R + 1), i * (R + 1) + nb + 1);
    b.imageLoc.set([0, 0, 1, 1, 1], i * (R + 1) * 5);
    for (let r = 0; r < nb; r++) {
      const row = (i * (R + 1) + r + 1) * o.featureDim;
      for (let k = 0; k < o.featureDim; k++) b.imageFeat[row + k] = Math.max(rng.normal(), 0);
      b.imageLoc.set([0.1, 0.1, 0.5, 0.6, 0.2], (i * (R + 1) + r + 1) * 5);
      const tgt = (i * R + r) * o.numClasses;
      let s = 0;
      for (let k = 0; k < o.numClasses; k++) s += b.imageTarget[tgt + k] = Math.exp(2 * rng.normal());
      for (let k = 0; k < o.numClasses; k++) b.imageTarget[tgt + k]! /= s;
      if (rng.next() < 0.3) {
        b.imageLabel[i * R + r] = 1;
        b.imageFeat.fill(0, row, row + o.featureDim);
      }
    }
  }
  return b;
}

/**
 * A tiny model config (overrides of the preset) with every part: two text layers, one visual
 * layer, co-attention at both; fast enough to train a few steps in a test.
 */
export const TINY_MODEL = Object.freeze({
  hidden_size: 16,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  intermediate_size: 32,
  v_hidden_size: 16,
  v_num_hidden_layers: 1,
  v_num_attention_heads: 2,
  v_intermediate_size: 32,
  v_biattention_id: [0],
  t_biattention_id: [1],
  bi_hidden_size: 16,
  bi_num_attention_heads: 2,
  max_position_embeddings: 64,
});

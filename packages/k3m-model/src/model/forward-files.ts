/**
 * @file `k3m-model forward`: one batch given as tensors (names as in the golden
 * `inputs.safetensors`) through the model in evaluation mode without dropout, writing the four
 * losses, `loss_sum` and every intermediate under the golden names. How users check parity
 * with a PyTorch run of their own; the golden tests go through it too.
 */
import { readFile } from 'node:fs/promises';
import * as tf from '@tensorflow/tfjs';
import { f32, readSafetensors, toFloat32, writeSafetensors, type RawTensor } from '@k3m-kit/core';
import { batchFromTensors } from './batch-tensors.ts';
import { parseModelConfig } from './config.ts';
import { forward, ORIGINAL_BEHAVIOUR, type FusionMode, type ModelFixes } from './k3m.ts';
import { K3mParams } from './params.ts';

export interface ForwardFilesOptions {
  /** Model config JSON: ours or the original's BERT-style file (a top-level `config` key is unwrapped). */
  config: string;
  weights: string;
  inputs: string;
  out: string;
  fusionMode: FusionMode;
  /** Mode 1: `gumbel_noise_{v,t,pv}` [B, L, 3, H]; without it mode 1 picks the largest gate. */
  gumbelNoise?: string;
  /** Default: the original's behaviour, which is what a PyTorch run produces. */
  fixes?: ModelFixes;
}

export async function forwardFiles(o: ForwardFilesOptions): Promise<{ written: string[]; losses: Record<string, number> }> {
  const config = parseModelConfig(JSON.parse(await readFile(o.config, 'utf8')));
  const params = K3mParams.fromStateDict(config, (await readSafetensors(o.weights)).tensors);
  const batch = batchFromTensors((await readSafetensors(o.inputs)).tensors);
  const noise = o.gumbelNoise ? (await readSafetensors(o.gumbelNoise)).tensors : undefined;
  const tensors = new Map<string, RawTensor>();
  const losses: Record<string, number> = {};
  try {
    tf.tidy(() => {
      const nt = (k: string) => {
        const t = noise!.get(`gumbel_noise_${k}`);
        if (!t) throw new Error(`${o.gumbelNoise}: no gumbel_noise_${k}`);
        return tf.tensor(toFloat32(t), t.shape);
      };
      const gumbelNoise = noise ? { v: nt('v'), t: nt('t'), pv: nt('pv') } : undefined;
      const r = forward(params, batch, { fusionMode: o.fusionMode, outputs: 'all', gumbel: 'argmax', gumbelNoise, fixes: o.fixes ?? ORIGINAL_BEHAVIOUR });
      const all: Record<string, tf.Tensor> = { ...r.losses, loss_sum: r.loss!, ...r.outputs };
      for (const [name, t] of Object.entries(all)) {
        const data = t.dataSync() as Float32Array;
        const isLoss = t.rank === 0;
        if (isLoss) losses[name] = data[0]!;
        tensors.set(name, f32(isLoss ? [1] : t.shape, Float32Array.from(data)));
      }
    });
  } finally {
    params.dispose();
  }
  await writeSafetensors(o.out, tensors, { producer: 'k3m-kit k3m-model forward', fusion_mode: String(o.fusionMode) });
  return { written: [...tensors.keys()].sort(), losses };
}

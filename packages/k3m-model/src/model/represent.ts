/**
 * @file The representation API for evaluation: load a trained run and map batches (or records)
 * to pooled item representations, with dropout off and a deterministic fusion (mode 1 picks
 * the largest gate without Gumbel noise; reference 8 #6).
 *
 * Rows per item, each [hidden_size]:
 * - `pooled_t`, `pooled_pv`: mean of the fused title / knowledge tokens 1..L−1 (reference 4.5);
 * - `pooled_v`: `map_bi_to_individual` of the mean fused region rows 1..36;
 * - `c_initial` = (pooled_v + pooled_t + pooled_pv)/3, the item before knowledge aggregation;
 * - `c_final` = c_initial + struc_w3(SAM aggregate of the PV pairs), the item representation.
 */
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { K3mRecord } from '@k3m-kit/lmdb-writer';
import type { Batch } from '../data/batch.ts';
import type { Modality } from '../data/corrupt.ts';
import { batches } from '../data/pipeline.ts';
import { K3mTokenizer } from '../data/tokenizer.ts';
import { readModelFiles } from '../codecs/checkpoint.ts';
import type { ModelConfig } from './config.ts';
import { DEFAULT_FIXES, forward, type FusionMode, type ModelFixes } from './k3m.ts';
import { K3mParams } from './params.ts';

export const REPRESENTATION_NAMES = ['pooled_t', 'pooled_v', 'pooled_pv', 'c_initial', 'c_final'] as const;
export type RepresentationName = (typeof REPRESENTATION_NAMES)[number];

/** Row-major [batchSize, dim] matrices by name. */
export interface Representations {
  batchSize: number;
  dim: number;
  rows: Record<RepresentationName, Float32Array>;
}

export interface K3mModel {
  config: ModelConfig;
  params: K3mParams;
  tokenizer: K3mTokenizer;
  /** Modalities the run trained with; an absent one is blanked for every input. */
  modalities: Modality[];
  fusionMode: FusionMode;
  fixes: ModelFixes;
  /** Frees the weights. */
  dispose(): void;
}

/**
 * Loads `runs/<name>/` (model.safetensors, config.json, vocab.txt, run-config.json).
 * The back end must already be started ({@link startBackend}).
 * @example const m = await loadModel('work/runs/k3m-small'); const reps = represent(m, batch);
 */
export async function loadModel(runDir: string): Promise<K3mModel> {
  const { config, vocab, model } = await readModelFiles(runDir);
  const runConfigPath = join(runDir, 'run-config.json');
  const run = existsSync(runConfigPath)
    ? (JSON.parse(await readFile(runConfigPath, 'utf8')) as { modalities?: Modality[]; fusionMode?: FusionMode; fixes?: ModelFixes })
    : {};
  const params = K3mParams.fromStateDict(config, model);
  return {
    config,
    params,
    tokenizer: K3mTokenizer.fromVocab(vocab),
    modalities: run.modalities ?? ['title', 'image', 'knowledge'],
    fusionMode: run.fusionMode ?? 1,
    fixes: run.fixes ?? DEFAULT_FIXES,
    dispose: () => params.dispose(),
  };
}

/** Pooled representations of one batch (evaluation mode, deterministic). */
export function represent(model: K3mModel, batch: Batch, o: { fusionMode?: FusionMode } = {}): Representations {
  return tf.tidy(() => {
    const r = forward(model.params, batch, { fusionMode: o.fusionMode ?? model.fusionMode, gumbel: 'argmax', outputs: 'represent', fixes: model.fixes });
    const rows = Object.fromEntries(REPRESENTATION_NAMES.map((n) => [n, r.outputs[n]!.dataSync() as Float32Array])) as Representations['rows'];
    return { batchSize: batch.shape.batchSize, dim: model.config.hidden_size, rows };
  });
}

/**
 * Records to representations in record order, preprocessed without any masking (title,
 * knowledge values and regions all visible). Modalities the model was trained without are blanked.
 */
export async function encodeRecords(model: K3mModel, records: readonly K3mRecord[], o: { batchSize?: number } = {}): Promise<Representations> {
  const dim = model.config.hidden_size;
  const rows = Object.fromEntries(REPRESENTATION_NAMES.map((n) => [n, new Float32Array(records.length * dim)])) as Representations['rows'];
  const drop = (m: Modality) => (model.modalities.includes(m) ? 0 : 1);
  let at = 0;
  for await (const batch of batches(records, {
    tokenizer: model.tokenizer,
    batchSize: o.batchSize ?? 16,
    mode: 'validation',
    titleMaskProb: 0,
    knowledgeMasking: 'none',
    regionMaskProb: 0,
    featureDim: model.config.v_feature_size,
    numClasses: records[0]?.numClasses ?? 0,
    corruption: { dropTitle: drop('title'), dropImage: drop('image'), dropKnowledge: drop('knowledge') },
  })) {
    const r = represent(model, batch);
    for (const n of REPRESENTATION_NAMES) rows[n].set(r.rows[n], at * dim);
    at += r.batchSize;
  }
  return { batchSize: records.length, dim, rows };
}

/**
 * @file A pretrained run (`<workDir>/runs/<name>/`) as a {@link RepresentationEncoder}, over the
 * model's representation API (`loadModel`, `encodeRecords`: every masking off, dropout off,
 * deterministic fusion, modalities the run trained without blanked).
 *
 * A feature row is `[pooled_t; pooled_v; pooled_pv; c_final]` (k3m-reference.md 4.5-4.6): the
 * three pooled modality representations and the item representation after the structure
 * aggregation. `c_initial` is left out: it is the mean of the three pooled vectors, so a linear
 * probe gains nothing from it.
 */
import type { K3mRecord } from '@k3m-kit/lmdb-writer';
import type { Modality } from '../data/corrupt.ts';
import { encodeRecords, loadModel } from '../model/represent.ts';
import type { RepresentationEncoder } from './encoder.ts';
import type { Matrix } from './probe.ts';

/** The pooled outputs concatenated into a feature row, in order. */
export const FEATURE_PARTS = Object.freeze(['pooled_t', 'pooled_v', 'pooled_pv', 'c_final'] as const);

/** An opened model: its encoder, the modalities it was pretrained with, and how to free it. */
export interface OpenedModel {
  encoder: RepresentationEncoder;
  modalities: readonly Modality[];
  dispose?(): void;
}

/**
 * Loads a run directory (weights, config, vocabulary, run-config.json).
 * @example const { encoder } = await openRun('work/runs/k3m-small', 32);
 */
export async function openRun(runDir: string, batchSize: number): Promise<OpenedModel> {
  const model = await loadModel(runDir);
  const h = model.config.hidden_size;
  const dim = h * FEATURE_PARTS.length;
  const encoder: RepresentationEncoder = {
    dim,
    async encode(records: readonly K3mRecord[]): Promise<Matrix> {
      const data = new Float32Array(records.length * dim);
      if (records.length === 0) return { data, rows: 0, cols: dim };
      const reps = await encodeRecords(model, records, { batchSize });
      for (let i = 0; i < records.length; i++) {
        FEATURE_PARTS.forEach((part, k) => data.set(reps.rows[part].subarray(i * h, (i + 1) * h), i * dim + k * h));
      }
      return { data, rows: records.length, cols: dim };
    },
  };
  return { encoder, modalities: model.modalities, dispose: () => model.dispose() };
}

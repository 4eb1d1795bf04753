/**
 * @file ADAPTER until the model package exports its representation API: a pretrained run
 * (`<workDir>/runs/<name>/`: config.json, vocab.txt, model.safetensors) as a
 * {@link RepresentationEncoder}. Records are preprocessed with every masking off (title, regions
 * and knowledge values all visible), collated as the data path does, and run through the model's
 * `forward` in `represent` mode with dropout off and the deterministic fusion (`gumbel: argmax`).
 *
 * A feature row is `[pooled_t; pooled_v; pooled_pv; c_final]` (k3m-reference.md 4.5-4.6): the
 * three pooled modality representations and the item representation after the structure
 * aggregation (`c_initial` when the model returns no `c_final`).
 */
import * as tf from '@tensorflow/tfjs';
import type { K3mRecord } from '@k3m-kit/lmdb-writer';
import { collate } from '../data/collate.ts';
import { preprocessRecords } from '../data/pipeline.ts';
import { resolvePreprocessOptions } from '../data/preprocess.ts';
import { Rng } from '../data/rng.ts';
import { K3mTokenizer } from '../data/tokenizer.ts';
import { forward, type FusionMode } from '../model/k3m.ts';
import { K3mParams } from '../model/params.ts';
import { readModelFiles } from '../train/checkpoint.ts';
import type { RepresentationEncoder } from './encoder.ts';
import type { Matrix } from './probe.ts';

export interface RunEncoderOptions {
  fusionMode: FusionMode;
}

/** The pooled outputs concatenated into a feature row, in order. */
export const FEATURE_PARTS = Object.freeze(['pooled_t', 'pooled_v', 'pooled_pv', 'c_final'] as const);

export class RunEncoder implements RepresentationEncoder {
  private constructor(
    private readonly params: K3mParams,
    private readonly tokenizer: K3mTokenizer,
    private readonly pre: ReturnType<typeof resolvePreprocessOptions>,
    private readonly opts: RunEncoderOptions,
    readonly dim: number,
  ) {}

  /** Loads a run directory's weights, config and vocabulary. */
  static async open(runDir: string, opts: RunEncoderOptions, sample: K3mRecord): Promise<RunEncoder> {
    const files = await readModelFiles(runDir);
    const params = K3mParams.fromStateDict(files.config, files.model);
    const tokenizer = K3mTokenizer.fromVocab(files.vocab);
    const pre = resolvePreprocessOptions({
      featureDim: files.config.v_feature_size,
      numClasses: sample.numClasses || files.config.v_target_size,
      titleMaskProb: 0,
      regionMaskProb: 0,
      knowledgeMasking: 'none',
    });
    const hidden = files.config.hidden_size;
    return new RunEncoder(params, tokenizer, pre, opts, hidden * FEATURE_PARTS.length);
  }

  async encode(records: readonly K3mRecord[]): Promise<Matrix> {
    if (records.length === 0) return { data: new Float32Array(0), rows: 0, cols: this.dim };
    // Masking is off, so the generators are never drawn from; they are still required per sample.
    const samples = await preprocessRecords(records, this.tokenizer, this.pre, records.map((_, i) => Rng.derive('eval', i)));
    const batch = collate(samples, this.pre);
    const data = tf.tidy(() => {
      const out = forward(this.params, batch, { fusionMode: this.opts.fusionMode, gumbel: 'argmax', outputs: 'represent', training: false }).outputs;
      const item = out.c_final ?? out.c_initial;
      if (!item) throw new Error('the model returned no item representation (c_final / c_initial)');
      return tf.concat([out.pooled_t!, out.pooled_v!, out.pooled_pv!, item], 1).dataSync() as Float32Array;
    });
    return { data: Float32Array.from(data), rows: records.length, cols: this.dim };
  }

  dispose(): void {
    this.params.dispose();
  }
}

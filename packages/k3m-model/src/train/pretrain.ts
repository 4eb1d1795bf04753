/**
 * @file `k3m-model pretrain` as a library call (k3m-reference.md 7): records → the data
 * pipeline → the model → AdamW with linear warm-up/decay, gradient accumulation, optional
 * clipping; metrics per step, validation per epoch, checkpoints every N steps and at the end
 * under `<workDir>/runs/<name>/`, and `resume` that reproduces the uninterrupted loss sequence.
 *
 * Determinism: parameters are initialised from the seed; the data path keys every draw by
 * (seed, epoch, position) and resumes with `skipBatches`; dropout and Gumbel noise come from one
 * {@link Rng} whose state is checkpointed.
 */
import { appendFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import cliProgress from 'cli-progress';
import { readSafetensors, RejectLog, writeFileAtomic } from '@k3m-kit/core';
import type { K3mRecord } from '@k3m-kit/lmdb-writer';
import { batches } from '../data/pipeline.ts';
import { K3mTokenizer } from '../data/tokenizer.ts';
import { buildVocab, readVocabFile, recordTexts } from '../data/vocab.ts';
import type { CorruptionRates, Modality } from '../data/corrupt.ts';
import type { KnowledgeMasking } from '../data/preprocess.ts';
import type { Batch } from '../data/batch.ts';
import { modelConfig, type ModelConfig, type PresetName } from '../model/config.ts';
import { forward, LOSS_NAMES, type FusionMode, type LossName, type LossWeights, type ModelFixes } from '../model/k3m.ts';
import { countParameters, K3mParams, loadHfBert, type InitFromReport } from '../model/params.ts';
import { Rng } from '@k3m-kit/core';
import { AdamW, clipByGlobalNorm, REFERENCE_ADAMW, warmupLinear } from './adamw.ts';
import { hasCheckpoint, readCheckpoint, writeCheckpoint, type TrainerState } from '../codecs/checkpoint.ts';
import { lossCurveSvg } from './curve.ts';
import type { RecordSource } from './records.ts';

/**
 * The report and reject-log name of a run: `k3m-model-pretrain` for the default run,
 * `k3m-model-pretrain-<name>` for others, so a baseline never overwrites the default run's files.
 */
export function pretrainStageName(name: string): string {
  return name === 'k3m-small' ? 'k3m-model-pretrain' : `k3m-model-pretrain-${name}`;
}

export interface PretrainOptions {
  workDir: string;
  /** Run name: outputs go to `<workDir>/runs/<name>/`. */
  name: string;
  preset: PresetName;
  /** Model config keys over the preset (BERT-style names). */
  model?: Record<string, unknown>;
  train: RecordSource;
  validation?: RecordSource;
  /** Optimizer steps; when set it wins over `epochs`. */
  steps?: number;
  epochs: number;
  batchSize: number;
  lr: number;
  warmup: number;
  /** Micro-batches per optimizer step. */
  accumulate: number;
  /** Global gradient-norm clip; off when undefined (the reference has none). */
  clip?: number;
  seed: number;
  fusionMode: FusionMode;
  /** Modalities the model learns from; a missing one is always empty and its losses are off. */
  modalities: readonly Modality[];
  corruption: CorruptionRates;
  fixes: ModelFixes;
  knowledgeMasking: KnowledgeMasking;
  /** vocab.txt; without it one is built from the training titles and knowledge. */
  vocab?: string;
  /** Hugging Face BERT safetensors for the text stream (reference 4.8). */
  initFrom?: string;
  resume: boolean;
  checkpointEvery: number;
  shuffleBuffer?: number;
  quiet: boolean;
  /** Aborting stops after the current step WITHOUT a checkpoint (as a kill would). */
  signal?: AbortSignal;
  onStep?: (m: StepMetrics) => void;
  log?: (line: string) => void;
  backend: string;
}

export interface StepMetrics {
  type: 'step';
  step: number;
  epoch: number;
  lr: number;
  loss: number;
  losses: Partial<Record<LossName, number>>;
  samples_per_s: number;
}

export interface ValidationMetrics {
  type: 'validation';
  /** −1 = before training */
  epoch: number;
  step: number;
  batches: number;
  losses: Partial<Record<LossName, number>>;
  accuracy: { title_mlm: number | null; knowledge_mlm: number | null; structure: number | null };
}

export interface PretrainResult {
  runDir: string;
  config: ModelConfig;
  parameters: number;
  steps: number;
  totalSteps: number;
  epochsRun: number;
  resumedFrom?: number;
  initFrom?: InitFromReport;
  stepMetrics: StepMetrics[];
  validation: ValidationMetrics[];
  /** `in`: records in the training set; `trained`: records batched in the first epoch; `rejected`: records the data path refused. */
  records: { in: number; trained: number; rejected: number; rejectedByReason: Record<string, number> };
  vocabSize: number;
  vocabBuilt: boolean;
  seconds: number;
  trainSeconds: number;
  aborted: boolean;
}

/** The resolved options of a run (modalities, fusion mode and fixes are what evaluation needs). */
export const RUN_CONFIG_FILE = 'run-config.json';

const WEIGHT_OF: Record<Modality, (keyof LossWeights)[]> = { title: ['t'], image: ['v'], knowledge: ['pv', 'tri'] };
const DROP_OF: Record<Modality, keyof CorruptionRates> = { title: 'dropTitle', image: 'dropImage', knowledge: 'dropKnowledge' };

/** Loss weights and corruption for a modality subset (an absent modality is dropped for every item). */
export function modalitySetup(modalities: readonly Modality[], corruption: CorruptionRates): { weights: LossWeights; corruption: CorruptionRates } {
  const weights: LossWeights = { t: 1, v: 1, pv: 1, tri: 1 };
  const c: CorruptionRates = { ...corruption };
  for (const m of ['title', 'image', 'knowledge'] as Modality[]) {
    if (modalities.includes(m)) continue;
    for (const k of WEIGHT_OF[m]) weights[k] = 0;
    c[DROP_OF[m]] = 1;
  }
  return { weights, corruption: c };
}

async function firstRecord(src: RecordSource): Promise<K3mRecord> {
  for await (const r of src.records()) return r;
  throw new Error('the training set is empty');
}

const scalars = (ls: Partial<Record<LossName, tf.Scalar>>) => Object.fromEntries(Object.entries(ls).map(([k, v]) => [k, v!.dataSync()[0]!])) as Partial<Record<LossName, number>>;

export async function pretrain(o: PretrainOptions): Promise<PretrainResult> {
  const t0 = performance.now();
  const log = o.log ?? (() => {});
  if (o.batchSize < 2) throw new RangeError(`batchSize=${o.batchSize}: the structure loss pairs each item with the next one and needs at least 2 (reference 8 #22)`);
  const runDir = join(o.workDir, 'runs', o.name);
  await mkdir(runDir, { recursive: true });
  const metricsPath = join(runDir, 'metrics.jsonl');

  let ckpt = o.resume && hasCheckpoint(runDir) ? await readCheckpoint(runDir) : undefined;
  if (o.resume && !ckpt) log(`resume: no checkpoint in ${runDir}, starting from scratch`);
  let vocabBuilt = false;
  let tokens: string[];
  if (ckpt) tokens = ckpt.vocab;
  else if (o.vocab) tokens = await readVocabFile(o.vocab);
  else {
    tokens = (await buildVocab(recordTexts(o.train.records()))).tokens;
    vocabBuilt = true;
  }
  const tokenizer = K3mTokenizer.fromVocab(tokens);
  const first = await firstRecord(o.train);
  const numClasses = first.numClasses || 1601;
  const config = ckpt ? ckpt.config : modelConfig(o.preset, { vocab_size: tokens.length, v_feature_size: first.featureDim, v_target_size: numClasses, ...o.model });
  if (config.vocab_size !== tokens.length) throw new Error(`model vocab_size ${config.vocab_size} differs from the vocabulary's ${tokens.length} tokens`);

  const { weights, corruption } = modalitySetup(o.modalities, o.corruption);
  // Records written with --no-cls-prob have no region targets: the image loss is off.
  if (first.numClasses === 0) weights.v = 0;

  const params = ckpt ? K3mParams.fromStateDict(config, ckpt.model) : K3mParams.init(config, o.seed);
  let initFrom: InitFromReport | undefined;
  if (!ckpt && o.initFrom) {
    initFrom = loadHfBert(params, (await readSafetensors(o.initFrom)).tensors);
    log(`init-from ${o.initFrom}: ${initFrom.loaded.length} tensors loaded, ${initFrom.skipped.length} skipped`);
  }
  const adam = new AdamW(REFERENCE_ADAMW);
  const batchesPerEpoch = Math.floor(o.train.length / o.batchSize);
  const updatesPerEpoch = Math.floor(batchesPerEpoch / o.accumulate);
  if (updatesPerEpoch < 1) throw new RangeError(`${o.train.length} training records give no full optimizer step at batch ${o.batchSize} x accumulate ${o.accumulate}`);
  const totalSteps = ckpt ? ckpt.state.totalSteps : (o.steps ?? updatesPerEpoch * o.epochs);
  let state: TrainerState = { step: 0, epoch: 0, batchInEpoch: 0, rng: new Rng(o.seed ^ 0x5eed).state, adamSteps: {}, metricsLines: 0, totalSteps };
  const stepMetrics: StepMetrics[] = [];
  const validation: ValidationMetrics[] = [];
  let metricsLines = 0;
  if (ckpt) {
    state = ckpt.state;
    adam.loadStateDict(ckpt.optimizer, state.adamSteps);
    // Keep exactly the metrics lines written up to the checkpoint.
    const kept = existsSync(metricsPath) ? (await readFile(metricsPath, 'utf8')).split('\n').filter(Boolean).slice(0, state.metricsLines) : [];
    await writeFile(metricsPath, kept.map((l) => l + '\n').join(''));
    for (const l of kept) {
      const m = JSON.parse(l) as StepMetrics | ValidationMetrics;
      (m.type === 'step' ? stepMetrics : validation).push(m as never);
    }
    metricsLines = kept.length;
    log(`resume: step ${state.step} of ${totalSteps} (epoch ${state.epoch}, batch ${state.batchInEpoch})`);
  } else {
    await rm(metricsPath, { force: true });
  }
  ckpt = undefined;
  const resumedFrom = o.resume && state.step > 0 ? state.step : undefined;
  const rng = Rng.fromState(state.rng);
  const vars = params.vars;
  const names = [...vars.keys()];
  const byVarName = new Map(names.map((n) => [vars.get(n)!.name, n]));

  const emit = async (m: StepMetrics | ValidationMetrics) => {
    await appendFile(metricsPath, JSON.stringify(m) + '\n');
    metricsLines++;
    (m.type === 'step' ? stepMetrics : validation).push(m as never);
  };

  const rejects = await RejectLog.open(o.workDir, pretrainStageName(o.name));
  const rejectedIds = new Set<string>();
  let recordsIn = 0;
  const pipeline = (src: RecordSource, mode: 'train' | 'validation', epoch: number, skipBatches = 0) =>
    batches(src.records(), {
      tokenizer,
      batchSize: o.batchSize,
      mode,
      seed: o.seed,
      epoch,
      shuffleBuffer: o.shuffleBuffer,
      corruption,
      skipBatches,
      featureDim: config.v_feature_size,
      numClasses: first.numClasses,
      knowledgeMasking: o.knowledgeMasking,
      onReject: (r, reason) => {
        if (mode !== 'train' || rejectedIds.has(r.imageId)) return;
        rejectedIds.add(r.imageId);
        void rejects.add({ source: 'training_feat_all.lmdb', reason, id: r.imageId });
      },
    });

  const validate = async (epoch: number): Promise<void> => {
    if (!o.validation) return;
    // Each loss is averaged over the labelled positions of the whole validation set (a batch
    // without masked regions has no image loss, rather than a 0 that drags the mean down).
    const sums: Partial<Record<LossName, number>> = {};
    const weightsOf: Partial<Record<LossName, number>> = {};
    const acc = { t: [0, 0], pv: [0, 0], tri: [0, 0] };
    let n = 0;
    for await (const batch of pipeline(o.validation, 'validation', Math.max(epoch, 0))) {
      const count: Record<LossName, number> = {
        masked_loss_t: batch.lmLabelIds.filter((l) => l >= 0).length,
        masked_loss_v: batch.imageLabel.filter((l) => l === 1).length,
        masked_loss_pv: batch.lmLabelIdsPv.filter((l) => l >= 0).length,
        loss_tri: 2 * batch.shape.batchSize,
      };
      tf.tidy(() => {
        const r = forward(params, batch, { fusionMode: o.fusionMode, gumbel: 'argmax', fixes: o.fixes, weights, accuracy: true });
        for (const [k, v] of Object.entries(scalars(r.losses)) as [LossName, number][]) {
          if (!count[k]) continue;
          sums[k] = (sums[k] ?? 0) + v * count[k];
          weightsOf[k] = (weightsOf[k] ?? 0) + count[k];
        }
        for (const k of ['t', 'pv', 'tri'] as const) {
          acc[k][0]! += r.accuracy![k][0];
          acc[k][1]! += r.accuracy![k][1];
        }
      });
      n++;
    }
    if (!n) return;
    const ratio = ([a, b]: number[]) => (b ? a! / b : null);
    await emit({
      type: 'validation',
      epoch,
      step: state.step,
      batches: n,
      losses: Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, v! / weightsOf[k as LossName]!])),
      accuracy: { title_mlm: ratio(acc.t), knowledge_mlm: weights.pv ? ratio(acc.pv) : null, structure: weights.tri ? ratio(acc.tri) : null },
    });
  };

  const bar =
    o.quiet || !process.stderr.isTTY
      ? undefined
      : new cliProgress.SingleBar(
          { format: `pretrain |{bar}| {value}/{total} steps {eta_formatted} left | loss {loss} (t {t} v {v} pv {pv} tri {tri})`, stream: process.stderr, hideCursor: true },
          cliProgress.Presets.shades_classic,
        );
  bar?.start(totalSteps, state.step, { loss: '-', t: '-', v: '-', pv: '-', tri: '-' });

  const checkpoint = async () => {
    const opt = adam.stateDict();
    state = { ...state, rng: rng.state, adamSteps: opt.steps, metricsLines };
    await writeCheckpoint(runDir, { state, config, vocab: tokens, model: params.toStateDict(), optimizer: opt.tensors });
  };

  const { train: _t, validation: _v, signal: _s, onStep: _o, log: _l, ...resolved } = o;
  await writeFileAtomic(
    join(runDir, RUN_CONFIG_FILE),
    JSON.stringify({ ...resolved, totalSteps, trainRecords: o.train.length, validationRecords: o.validation?.length ?? 0, lossWeights: weights, corruption, model: config }, null, 2) + '\n',
  );
  const tTrain = performance.now();
  if (state.step === 0 && !resumedFrom) await validate(-1);
  let aborted = false;
  let epochsRun = 0;
  let accum = new Map<string, tf.Tensor>();
  let micro = 0;
  let stepStart = performance.now();
  let stepLosses: Partial<Record<LossName, number>>[] = [];
  let stepLoss = 0;
  const runStep = async (batch: Batch) => {
    const { value, grads } = tf.variableGrads(() => {
      const r = forward(params, batch, { fusionMode: o.fusionMode, training: true, rng, fixes: o.fixes, weights });
      stepLosses.push(scalars(r.losses));
      return (o.accumulate === 1 ? r.loss! : tf.div(r.loss!, o.accumulate)) as tf.Scalar;
    }, names.map((n) => vars.get(n)!));
    stepLoss += value.dataSync()[0]!;
    value.dispose();
    for (const [v, g] of Object.entries(grads)) {
      if (!g) continue;
      const name = byVarName.get(v)!;
      const prev = accum.get(name);
      if (prev) {
        accum.set(name, tf.add(prev, g));
        prev.dispose();
        g.dispose();
      } else accum.set(name, g);
    }
    micro++;
    if (micro < o.accumulate) return;
    if (o.clip !== undefined) clipByGlobalNorm(accum, o.clip);
    const lr = o.lr * warmupLinear(state.step, totalSteps, o.warmup);
    adam.step(vars, accum, lr);
    for (const g of accum.values()) g.dispose();
    accum = new Map();
    state.step++;
    const secs = (performance.now() - stepStart) / 1000;
    const mean: Partial<Record<LossName, number>> = {};
    for (const k of LOSS_NAMES) {
      const xs = stepLosses.map((l) => l[k]).filter((x): x is number => x !== undefined);
      if (xs.length) mean[k] = xs.reduce((a, b) => a + b, 0) / xs.length;
    }
    const m: StepMetrics = { type: 'step', step: state.step, epoch: state.epoch, lr, loss: stepLoss, losses: mean, samples_per_s: (o.batchSize * o.accumulate) / secs };
    await emit(m);
    o.onStep?.(m);
    const f = (x?: number) => (x === undefined ? '-' : x.toFixed(3));
    bar?.update(state.step, { loss: f(m.loss), t: f(mean.masked_loss_t), v: f(mean.masked_loss_v), pv: f(mean.masked_loss_pv), tri: f(mean.loss_tri) });
    micro = 0;
    stepLosses = [];
    stepLoss = 0;
    if (state.step % o.checkpointEvery === 0 && state.step < totalSteps) await checkpoint();
    stepStart = performance.now();
  };

  outer: while (state.step < totalSteps) {
    const skip = state.batchInEpoch;
    let consumed = skip;
    let complete = true;
    stepStart = performance.now();
    for await (const batch of pipeline(o.train, 'train', state.epoch, skip)) {
      if (state.epoch === 0) recordsIn += batch.shape.batchSize;
      consumed++;
      state.batchInEpoch = consumed;
      await runStep(batch);
      if (o.signal?.aborted) {
        aborted = true;
        break outer;
      }
      if (state.step >= totalSteps && micro === 0) {
        complete = consumed >= batchesPerEpoch;
        break;
      }
    }
    epochsRun++;
    await validate(state.epoch);
    if (!complete) break;
    state.epoch++;
    state.batchInEpoch = 0;
    for (const g of accum.values()) g.dispose();
    accum = new Map();
    micro = 0;
    stepLosses = [];
    stepLoss = 0;
  }
  bar?.stop();
  const trainSeconds = (performance.now() - tTrain) / 1000;
  if (!aborted) {
    await checkpoint();
    await rejects.commit();
    await writeFileAtomic(
      join(runDir, 'loss-curve.svg'),
      lossCurveSvg(
        LOSS_NAMES.filter((k) => stepMetrics.some((m) => m.losses[k] !== undefined)).map((k) => ({
          name: k,
          points: stepMetrics.map((m) => [m.step, m.losses[k] ?? NaN] as [number, number]),
          dots: validation.map((v) => [v.step, v.losses[k] ?? NaN] as [number, number]),
        })),
        `${o.name}: training losses per step, validation means as dots`,
      ),
    );
  } else {
    await rejects.abort();
  }
  adam.dispose();
  params.dispose();
  for (const g of accum.values()) g.dispose();
  return {
    runDir,
    config,
    parameters: countParameters(config),
    steps: state.step,
    totalSteps,
    epochsRun,
    resumedFrom,
    initFrom,
    stepMetrics,
    validation,
    records: { in: o.train.length, trained: recordsIn, rejected: rejectedIds.size, rejectedByReason: rejects.reasons.toJSON() },
    vocabSize: tokens.length,
    vocabBuilt,
    seconds: (performance.now() - t0) / 1000,
    trainSeconds,
    aborted,
  };
}


/**
 * @file `k3m-model pretrain` as a library call (k3m-reference.md 7): records, the data
 * pipeline, the model, AdamW with linear warm-up/decay, gradient accumulation, optional
 * clipping; metrics per step, validation per epoch, checkpoints every N steps and at the end
 * under `<workDir>/runs/<name>/`, and `resume` that reproduces the uninterrupted loss sequence.
 *
 * Every record is trained on (a smaller last batch; a single trailing record joins the batch
 * before it, as the structure loss needs pairs) and every epoch is counted in its own ledger:
 * records read from the LMDB, records trained, records rejected, and records left unread when a
 * step budget ends an epoch early.
 *
 * Determinism: parameters are initialised from the seed; the data path keys every draw by
 * (seed, epoch, position) and resumes with `skipBatches`; dropout and Gumbel noise come from one
 * {@link Rng} whose state is checkpointed.
 */
import { join } from 'node:path';
import { createProgress, Ledger, RejectLog, Rng, writeFileAtomic, type LedgerCounts } from '@k3m-kit/core';
import { batchCount, batches } from '../data/pipeline.ts';
import { writeCheckpoint, type TrainerState } from '../codecs/checkpoint.ts';
import type { ModelConfig } from '../model/config.ts';
import { LOSS_NAMES } from '../model/k3m.ts';
import type { InitFromReport } from '../model/param-arena.ts';
import { countParameters } from '../model/params.ts';
import { corruptionOf, fixesOf, fusionModeOf, modalitySetup, sharesOf, workersOf, type PretrainConfig } from './config.ts';
import { lossCurveSvg } from './curve.ts';
import { MetricsLog, type StepMetrics, type ValidationMetrics } from './metrics-log.ts';
import { OptimizerStep, type StepResult } from './optimizer-step.ts';
import { createSharedTraining, sharedWeights } from './shared-training.ts';
import { WorkerPool } from './worker-pool.ts';
import type { RecordSource } from './records.ts';
import { startRun, type RunStart } from './run-setup.ts';
import { validate } from './validate.ts';

export type { StepMetrics, ValidationMetrics } from './metrics-log.ts';

/** The smallest batch training forms: the structure loss pairs each item with the next one. */
const MIN_BATCH = 2;

/**
 * The report and reject-log name of a run: `k3m-model-pretrain` for the default run,
 * `k3m-model-pretrain-<name>` for others, so a baseline never overwrites the default run's files.
 */
export function pretrainStageName(name: string): string {
  return name === 'k3m-small' ? 'k3m-model-pretrain' : `k3m-model-pretrain-${name}`;
}

/** The resolved options of a run (modalities, fusion mode and fixes are what evaluation needs). */
export const RUN_CONFIG_FILE = 'run-config.json';

/** Where the records come from and how the caller follows along. */
export interface PretrainIo {
  train: RecordSource;
  validation?: RecordSource;
  /** Recorded in the run config. */
  backend: string;
  /** Aborting stops after the current step WITHOUT a checkpoint (as a kill would). */
  signal?: AbortSignal;
  onStep?: (m: StepMetrics) => void;
  log?: (line: string) => void;
}

/** One epoch's accounting: the training LMDB's records as this epoch read them. */
export interface EpochCounts extends LedgerCounts {
  epoch: number;
  /** False when a step budget (or an interruption) ended the epoch before its last batch. */
  complete: boolean;
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
  /** Each epoch this process ran, counted as it streamed. */
  epochs: EpochCounts[];
  /** The report's accounting: the first complete epoch, or the only (partial) one. */
  records: LedgerCounts;
  vocabSize: number;
  vocabBuilt: boolean;
  seconds: number;
  trainSeconds: number;
  /** Data-parallel training threads. */
  workers: number;
  /** Shares each micro-batch is cut into (the arithmetic depends on these, not on the workers). */
  shares: number;
  aborted: boolean;
}

/** Optimizer steps of a run: `steps`, or every batch of every epoch in steps of `accumulate` (rejected records not known yet). */
export function plannedSteps(c: Pick<PretrainConfig, 'steps' | 'epochs' | 'batchSize' | 'accumulate'>, records: number): number {
  const perEpoch = Math.ceil(batchCount(records, c.batchSize, MIN_BATCH) / c.accumulate);
  if (perEpoch < 1) throw new RangeError(`${records} training records give no optimizer step at batch ${c.batchSize}`);
  return c.steps ?? perEpoch * c.epochs;
}

/**
 * Pretrains a K3M model; see the file header.
 * @example const r = await pretrain(pretrainConfig({ workDir: 'work', steps: 10 }), { train, validation, backend: 'wasm' });
 */
export async function pretrain(c: PretrainConfig, io: PretrainIo): Promise<PretrainResult> {
  const t0 = performance.now();
  const log = io.log ?? (() => {});
  if (c.batchSize < MIN_BATCH) throw new RangeError(`batchSize=${c.batchSize}: the structure loss pairs each item with the next one and needs at least 2 (reference 8 #22)`);
  const shares = sharesOf(c, io.backend);
  const workers = workersOf(c, io.backend);
  const run = await startRun(c, io.train, plannedSteps(c, io.train.length), { backend: io.backend, workers, shares }, log);
  const { runDir, params, adam, config } = run;
  let state = run.state;
  const totalSteps = state.totalSteps;
  const resumedFrom = run.resumed && state.step > 0 ? state.step : undefined;
  const metricsPath = join(runDir, 'metrics.jsonl');
  const metrics = run.resumed ? await MetricsLog.resume(metricsPath, state.metricsLines) : await MetricsLog.create(metricsPath);
  const rng = Rng.fromState(state.rng);
  const fusionMode = fusionModeOf(c);
  const fixes = fixesOf(c);
  const { weights, corruption } = modalitySetup(c.modalities, corruptionOf(c));
  // Records written with --no-cls-prob have no region targets: the image loss is off.
  if (run.first.numClasses === 0) weights.v = 0;
  await writeRunConfig(c, io, run, { totalSteps, weights, corruption });

  const rejects = await RejectLog.open(c.workDir, pretrainStageName(c.name));
  const rejectedIds = new Set<string>();
  const pipeline = (src: RecordSource, mode: 'train' | 'validation', epoch: number, extra: { skipBatches?: number; ledger?: Ledger } = {}) =>
    batches(src.records(), {
      tokenizer: run.tokenizer,
      batchSize: c.batchSize,
      minBatch: MIN_BATCH,
      mode,
      seed: c.seed,
      epoch,
      shuffleBuffer: c.shuffleBuffer,
      corruption,
      featureDim: config.v_feature_size,
      numClasses: run.first.numClasses,
      knowledgeMasking: c.knowledgeMasking,
      ...extra,
      onReject: (r, reason) => {
        if (mode !== 'train' || rejectedIds.has(r.imageId)) return;
        rejectedIds.add(r.imageId);
        void rejects.add({ source: 'training_feat_all.lmdb', reason, id: r.imageId });
      },
    });
  const runValidation = async (epoch: number) => {
    if (!io.validation) return;
    const v = await validate(pipeline(io.validation, 'validation', Math.max(epoch, 0)), (b) => pool.validate(b), { weights, parallel: pool.size });
    if (v) await metrics.append({ type: 'validation', epoch, step: state.step, ...v });
  };
  const shared = createSharedTraining(params, adam, workers, shares);
  const checkpoint = async () => {
    const opt = adam.stateDict();
    state = { ...state, rng: rng.state, adamSteps: opt.steps, metricsLines: metrics.lines };
    // Between steps the weights are in the shared memory (shared-training.ts), not in `params`' own.
    await writeCheckpoint(runDir, { state, config, vocab: run.tokens, model: sharedWeights(shared).toStateDict(), optimizer: opt.tensors });
  };

  log(`training on ${workers} worker thread${workers > 1 ? 's' : ''} (${io.backend} each), each micro-batch in ${shares} share${shares > 1 ? 's' : ''}${c.workers && c.workers > workers ? ` (--workers ${c.workers}: one per share at most)` : ''}`);
  const pool = await WorkerPool.start(shared, { backend: io.backend, fusionMode, fixes, weights });
  const optimizer = new OptimizerStep(pool, rng, { accumulate: c.accumulate, clip: c.clip, lr: c.lr, warmup: c.warmup, totalSteps });
  const bar = createProgress('pretrain', totalSteps, { quiet: c.quiet, start: state.step, unit: 'steps', suffix: 'loss {loss} (t {t} v {v} pv {pv} tri {tri})', fields: { loss: '-', t: '-', v: '-', pv: '-', tri: '-' } });
  let stepStart = performance.now();
  const afterStep = async (r: StepResult) => {
    state.step++;
    const m: StepMetrics = { type: 'step', step: state.step, epoch: state.epoch, lr: r.lr, loss: r.loss, losses: r.losses, samples_per_s: r.records / ((performance.now() - stepStart) / 1000) };
    await metrics.append(m);
    io.onStep?.(m);
    const f = (x?: number) => (x === undefined ? '-' : x.toFixed(3));
    bar.update(state.step, { loss: f(m.loss), t: f(r.losses.masked_loss_t), v: f(r.losses.masked_loss_v), pv: f(r.losses.masked_loss_pv), tri: f(r.losses.loss_tri) });
    if (state.step % c.checkpointEvery === 0 && state.step < totalSteps) await checkpoint();
    stepStart = performance.now();
  };

  const tTrain = performance.now();
  const epochs: EpochCounts[] = [];
  let aborted = false;
  try {
  if (state.step === 0 && !resumedFrom) await runValidation(-1);
  // With --steps the budget is steps; otherwise whole epochs (the step count is then the LR
  // schedule's estimate, which counts rejected records too).
  const more = () => (c.steps !== undefined ? state.step < totalSteps : state.epoch < c.epochs);
  while (more()) {
    const ledger = new Ledger();
    let complete = true;
    stepStart = performance.now();
    for await (const batch of pipeline(io.train, 'train', state.epoch, { skipBatches: state.batchInEpoch, ledger })) {
      state.batchInEpoch++;
      const done = await optimizer.microBatch(batch, state.step);
      if (done) await afterStep(done);
      if (io.signal?.aborted) {
        aborted = true;
        complete = false;
        break;
      }
      if (c.steps !== undefined && state.step >= totalSteps && optimizer.pending === 0) {
        complete = false;
        break;
      }
    }
    if (!aborted && optimizer.pending) {
      // The epoch's last micro-batches make one smaller step rather than being dropped.
      const done = await optimizer.flush(state.step);
      if (done) await afterStep(done);
    }
    // A budget that ends exactly with the epoch's last batch completes the epoch.
    if (!complete && !aborted && ledger.skippedTotal === 0) complete = true;
    epochs.push({ epoch: state.epoch, complete, ...ledger.counts() });
    if (aborted) break;
    await runValidation(state.epoch);
    if (!complete) break;
    state.epoch++;
    state.batchInEpoch = 0;
    optimizer.reset();
  }
  } finally {
    bar.stop();
    await pool.close();
  }
  const trainSeconds = (performance.now() - tTrain) / 1000;
  if (aborted) await rejects.abort();
  else {
    await checkpoint();
    await rejects.commit();
    await writeFileAtomic(join(runDir, 'loss-curve.svg'), curve(c.name, metrics));
  }
  return {
    runDir,
    config,
    parameters: countParameters(config),
    steps: state.step,
    totalSteps,
    epochsRun: epochs.length,
    resumedFrom,
    initFrom: run.initFrom,
    stepMetrics: metrics.steps,
    validation: metrics.validation,
    epochs,
    records: reportedCounts(epochs),
    vocabSize: run.tokens.length,
    vocabBuilt: run.vocabBuilt,
    seconds: (performance.now() - t0) / 1000,
    trainSeconds,
    workers,
    shares,
    aborted,
  };
}

/** The first complete epoch's counts; without one, the partial epoch's (its skips say why). */
function reportedCounts(epochs: EpochCounts[]): LedgerCounts {
  const e = epochs.find((x) => x.complete) ?? epochs[0];
  if (!e) return new Ledger().counts();
  const { epoch: _e, complete: _c, ...counts } = e;
  return counts;
}

async function writeRunConfig(c: PretrainConfig, io: PretrainIo, run: RunStart, derived: { totalSteps: number; weights: object; corruption: object }): Promise<void> {
  const body = {
    ...c,
    fusionMode: fusionModeOf(c),
    fixes: fixesOf(c),
    backend: io.backend,
    shares: sharesOf(c, io.backend),
    totalSteps: derived.totalSteps,
    trainRecords: io.train.length,
    validationRecords: io.validation?.length ?? 0,
    lossWeights: derived.weights,
    corruption: derived.corruption,
    model: run.config,
  };
  await writeFileAtomic(join(run.runDir, RUN_CONFIG_FILE), JSON.stringify(body, null, 2) + '\n');
}

function curve(name: string, metrics: MetricsLog): string {
  const steps = metrics.steps;
  return lossCurveSvg(
    LOSS_NAMES.filter((k) => steps.some((m) => m.losses[k] !== undefined)).map((k) => ({
      name: k,
      points: steps.map((m) => [m.step, m.losses[k] ?? NaN] as [number, number]),
      dots: metrics.validation.map((v) => [v.step, v.losses[k] ?? NaN] as [number, number]),
    })),
    `${name}: training losses per step, validation means as dots`,
  );
}

export type { TrainerState };

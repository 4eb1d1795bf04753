/**
 * @file One model's share of the evaluation: open the run, check it was pretrained as its role
 * says, run every planned task under every grid cell, and return the values by cell. Runs in
 * the parent process or in a worker (model-worker.ts) alike.
 */
import { UsageError } from '@k3m-kit/core';
import { startBackend } from '../backend.ts';
import { EvaluateConfigSchema, type EvaluateConfig, type ResolvedEvaluateConfig } from './config.ts';
import { CachedEncoder } from './encoder.ts';
import { instanceRetrievalTask } from './instance-retrieval.ts';
import { planEvaluation, type EvaluationPlan } from './plan.ts';
import { toJsonNumber, type EvalResults, type ModelKey } from './results.ts';
import { openRun, type OpenedModel } from './run-encoder.ts';
import { classificationTask, completionTask, retrievalTask, type TaskContext, type TaskResult } from './tasks.ts';

/** Opens a run; injectable so tests can evaluate without a pretrained model. */
export type ModelOpener = (runDir: string, role: ModelKey) => Promise<OpenedModel>;

/** Loads `runs/<name>/` checkpoints. */
export const defaultOpener =
  (c: ResolvedEvaluateConfig): ModelOpener =>
  (runDir) =>
    openRun(runDir, c.batchSize);

/** The with-knowledge run must have learnt from knowledge and the baseline must not have. */
export function checkRole(role: ModelKey, name: string, modalities: readonly string[]): void {
  const knows = modalities.includes('knowledge');
  if (role === 'with-knowledge' && !knows) throw new UsageError(`--run ${name}: pretrained without knowledge (modalities ${modalities.join(',')})`);
  if (role === 'without-knowledge' && knows) {
    throw new UsageError(`--baseline ${name}: pretrained with knowledge; pretrain it with --modalities title,image`);
  }
}

/** One model's share of the results (what a worker process sends back). */
export interface ModelOutcome {
  role: ModelKey;
  /** Cell id to metric to value. */
  values: Record<string, Record<string, number | null>>;
  model: EvalResults['models'][ModelKey];
  fits: Record<string, unknown>;
  timings: Record<string, number>;
}

/** Runs every planned task for the model of `role`; `onCell` is called after each scored cell. */
export async function runModel(p: EvaluationPlan, role: ModelKey, opener: ModelOpener, onCell?: () => void): Promise<ModelOutcome> {
  const { c } = p;
  const opened = await opener(p.runDirs[role], role);
  checkRole(role, role === 'with-knowledge' ? c.run : c.baseline, opened.modalities);
  const encoder = new CachedEncoder(opened.encoder, c.batchSize);
  const ctx: TaskContext = {
    encoder,
    usesKnowledge: opened.modalities.includes('knowledge'),
    cells: p.cells,
    seed: c.seed,
    fitCorruption: p.budgets.fitCorruption.kinds,
    fitCorruptionShare: c.fitCorruption,
    onCell,
  };
  const values: ModelOutcome['values'] = Object.fromEntries(p.cells.map((cell) => [cell.id, {}]));
  const fits: Record<string, unknown> = {};
  const timings: Record<string, number> = {};
  const merge = (task: string, r: TaskResult, prefix: string) => {
    fits[`${role}.${task}`] = r.fit;
    for (const [id, m] of Object.entries(r.cells)) for (const [k, v] of Object.entries(m)) values[id]![`${prefix}${k}`] = toJsonNumber(v);
  };
  const split = { fit: p.fit, eval: p.evalItems };
  try {
    for (const task of p.tasks) {
      const t = performance.now();
      if (task === 'classification') merge(task, await classificationTask(ctx, split, p.budgets.classifier), 'classification.');
      if (task === 'retrieval') merge(task, await retrievalTask(ctx, split, p.budgets.projection), '');
      if (task === 'completion') merge(task, await completionTask(ctx, p.completion!, p.budgets.completion), 'completion.');
      if (task === 'instance-retrieval') merge(task, await instanceRetrievalTask(ctx, p.instance!), 'instance.');
      timings[`${role}.${task}`] = (performance.now() - t) / 1000;
    }
  } finally {
    opened.dispose?.();
  }
  return { role, values, fits, timings, model: { run: p.runDirs[role], usesKnowledge: ctx.usesKnowledge, encoded: encoder.encoded, cacheHits: encoder.hits } };
}

/**
 * One model's evaluation, for a worker process: the same plan as `evaluate` makes, then that
 * model's tasks.
 */
export async function evaluateModel(config: EvaluateConfig, role: ModelKey): Promise<ModelOutcome> {
  const c = EvaluateConfigSchema.parse(config);
  await startBackend(c.backend);
  const plan = await planEvaluation(c);
  try {
    return await runModel(plan, role, defaultOpener(c));
  } finally {
    plan.close();
  }
}

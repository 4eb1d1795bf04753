/**
 * @file `evaluate(config)`: the robustness table of issue 7. For the model pretrained with
 * knowledge and the one pretrained without it (`--modalities title,image`, same budget and
 * seed) runs every task under every grid cell, then writes `runs/<run>/eval/` (results.json,
 * results.md, plots, split.json) and `reports/k3m-model-evaluate.json`.
 *
 * The steps live in their own modules: the plan (plan.ts: records streamed from the LMDBs, the
 * split, the questions), one model's tasks (model-run.ts), the second process (workers.ts), the
 * chance levels (chance.ts) and the outputs (report.ts, results.ts).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createProgress, UsageError, writeFileAtomic } from '@k3m-kit/core';
import { describeBackend, startBackend } from '../backend.ts';
import { EvaluateConfigSchema, type EvaluateConfig, type ResolvedEvaluateConfig } from './config.ts';
import { infosOf } from './items.ts';
import { checkRole, defaultOpener, runModel, type ModelOpener, type ModelOutcome } from './model-run.ts';
import { planEvaluation, type EvaluationPlan } from './plan.ts';
import { assembleResults, writeEvaluation, type EvaluateReport } from './report.ts';
import { MODEL_KEYS } from './results.ts';
import { runModelInChild } from './workers.ts';

/** Refuses a missing run directory with the command that makes it. */
function checkRunsExist(c: ResolvedEvaluateConfig): void {
  for (const [flag, name, hint] of [
    ['--run', c.run, ''],
    ['--baseline', c.baseline, ' --modalities title,image'],
  ] as const) {
    const dir = join(c.workDir, 'runs', name);
    if (!existsSync(join(dir, 'config.json'))) throw new UsageError(`${flag} ${name}: no pretrained run in ${dir} (k3m-model pretrain --name ${name}${hint})`);
  }
}

/** Both models' outcomes: side by side in two processes, or one after the other here. */
async function runBoth(p: EvaluationPlan, opener: ModelOpener, parallel: boolean, onCell: () => void): Promise<ModelOutcome[]> {
  if (!parallel) {
    const outcomes: ModelOutcome[] = [];
    for (const role of MODEL_KEYS) outcomes.push(await runModel(p, role, opener, onCell));
    return outcomes;
  }
  // Refuse a wrong baseline here, with the usage message, not from inside the child.
  const baseline = await opener(p.runDirs['without-knowledge'], 'without-knowledge');
  baseline.dispose?.();
  checkRole('without-knowledge', p.c.baseline, baseline.modalities);
  const child = runModelInChild(p.c, 'without-knowledge');
  // Keep the child's rejection observed while this process works.
  child.catch(() => undefined);
  const own = await runModel(p, 'with-knowledge', opener, onCell);
  return [own, await child];
}

/**
 * Runs the evaluation. `openModel` defaults to loading `runs/<name>/` checkpoints; with the
 * default and `workers` >= 2, the model without knowledge is evaluated in a child process while
 * this one evaluates the model with knowledge (wasm runs one thread per process).
 * @example const report = await evaluate({ workDir: 'work' }); // runs/k3m-small/eval/results.md
 */
export async function evaluate(config: EvaluateConfig, openModel?: ModelOpener): Promise<EvaluateReport> {
  const c = EvaluateConfigSchema.parse(config);
  const t0 = performance.now();
  const backend = await startBackend(c.backend);
  if (!openModel) checkRunsExist(c);
  const p = await planEvaluation(c);
  try {
    const ids = (items: EvaluationPlan['fit']) => infosOf(items).map((i) => i.imageId);
    await writeFileAtomic(join(p.evalDir, 'split.json'), JSON.stringify({ seed: c.seed, fit: ids(p.fit), eval: ids(p.evalItems) }, null, 2) + '\n');
    const parallel = !openModel && c.workers >= 2;
    const perModel = p.cells.length * p.tasks.length;
    const progress = createProgress('evaluate', parallel ? perModel : MODEL_KEYS.length * perModel, { quiet: c.quiet });
    const outcomes = await runBoth(p, openModel ?? defaultOpener(c), parallel, () => progress.increment());
    progress.stop();
    const results = assembleResults(p, outcomes, describeBackend(backend), parallel ? 2 : 1, (performance.now() - t0) / 1000);
    return await writeEvaluation(p, results, t0);
  } finally {
    p.close();
  }
}

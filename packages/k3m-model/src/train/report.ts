/**
 * @file `reports/k3m-model-pretrain*.json` and its table: the records as the epochs counted
 * them, the back end, the step budget, first and last losses and accuracies, throughput; and
 * the pipeline summary printed after the last stage.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatStageTable, formatTable, readStageReports, type TableRow } from '@k3m-kit/core';
import { LOSS_NAMES } from '../model/k3m.ts';
import { fixesOf, fusionModeOf, type PretrainConfig } from './config.ts';
import { pretrainStageName, type PretrainResult, type StepMetrics } from './pretrain.ts';

const meanOf = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);

function lossesOf(xs: StepMetrics[]): Record<string, number | null> {
  return {
    loss: meanOf(xs.map((m) => m.loss)),
    ...Object.fromEntries(LOSS_NAMES.map((n) => [n, meanOf(xs.map((m) => m.losses[n]).filter((v): v is number => v !== undefined))])),
  };
}

/** The report of one pretraining run. */
export function pretrainReport(r: PretrainResult, c: PretrainConfig, backend: { name: string; line: string }, stage: string) {
  const s = r.stepMetrics;
  const k = Math.max(1, Math.floor(s.length / 10));
  const sps = s.slice(1).map((m) => m.samples_per_s).sort((a, b) => a - b);
  return {
    stage,
    ...r.records,
    seconds: r.seconds,
    /** Each epoch this process ran: read, trained, rejected, skipped. */
    epochs: r.epochs,
    backend: backend.name,
    backendDetail: backend.line,
    /** Data-parallel training threads, each with its own back end. */
    workers: r.workers,
    /** Shares each micro-batch is cut into. */
    shares: r.shares,
    run: c.name,
    runDir: r.runDir,
    preset: c.preset,
    parameters: r.parameters,
    vocabSize: r.vocabSize,
    vocabBuilt: r.vocabBuilt,
    modalities: c.modalities,
    fusionMode: fusionModeOf(c),
    fixes: fixesOf(c),
    steps: r.steps,
    totalSteps: r.totalSteps,
    epochsRun: r.epochsRun,
    batchSize: c.batchSize,
    accumulate: c.accumulate,
    lr: c.lr,
    resumedFrom: r.resumedFrom ?? null,
    initFrom: r.initFrom ? { loaded: r.initFrom.loaded.length, skipped: r.initFrom.skipped } : null,
    trainLossFirst: lossesOf(s.slice(0, k)),
    trainLossLast: lossesOf(s.slice(-k)),
    validationFirst: r.validation[0] ?? null,
    validationLast: r.validation.at(-1) ?? null,
    samplesPerSecond: sps.length ? sps[Math.floor(sps.length / 2)]! : (s[0]?.samples_per_s ?? 0),
    // Steps only (data, forward, backward, update); validation passes excluded.
    msPerStep: meanOf(s.map((m) => (1000 * c.batchSize * c.accumulate) / m.samples_per_s)) ?? 0,
    trainSeconds: r.trainSeconds,
  };
}

export type PretrainReport = ReturnType<typeof pretrainReport>;

/** The readable table of a {@link PretrainReport}. */
export function pretrainTable(r: PretrainReport): string {
  const f = (x: unknown) => (typeof x === 'number' ? x.toFixed(4) : '-');
  const rows: TableRow[] = [
    ['backend', `${r.backend} x ${r.workers} worker${r.workers > 1 ? 's' : ''}, ${r.shares} share${r.shares > 1 ? 's' : ''} per micro-batch`],
    ['run', r.runDir],
    ['parameters', r.parameters],
    ['records in / trained / rejected', `${r.in} / ${r.written} / ${r.rejected}`],
    ...r.epochs.map((e): TableRow => [`epoch ${e.epoch} records trained`, `${e.written} of ${e.in}${e.complete ? '' : ' (stopped early)'}`]),
    ['reconciles', r.reconciles],
    ['steps', `${r.steps} / ${r.totalSteps} (${r.epochsRun} epochs)`],
    ['train loss first -> last', `${f(r.trainLossFirst.loss)} -> ${f(r.trainLossLast.loss)}`],
  ];
  for (const n of LOSS_NAMES) {
    const a = r.validationFirst?.losses[n];
    const b = r.validationLast?.losses[n];
    if (a !== undefined || b !== undefined) rows.push([`val ${n} first -> last`, `${f(a)} -> ${f(b)}`]);
  }
  if (r.validationLast) {
    const acc = r.validationLast.accuracy;
    rows.push(['val accuracy title/knowledge/structure', `${f(acc.title_mlm)} / ${f(acc.knowledge_mlm)} / ${f(acc.structure)}`]);
    rows.push(['val accuracy, answer hidden: title/knowledge', `${f(acc.title_mlm_hidden)} / ${f(acc.knowledge_mlm_hidden)}`]);
  }
  rows.push(['samples/s (median step)', r.samplesPerSecond], ['ms per step', r.msPerStep], ['seconds', r.seconds]);
  return formatTable('k3m-model pretrain', rows);
}

/**
 * What `k3m-model summary` prints after the pipeline: every stage's counts and time, the run's
 * final losses and accuracies, and where its checkpoint, loss curve and reports are.
 */
export async function pipelineSummary(workDir: string, name: string): Promise<{ text: string; json: object }> {
  const stages = await readStageReports(workDir);
  const reportPath = join(workDir, 'reports', `${pretrainStageName(name)}.json`);
  const run = existsSync(reportPath) ? (JSON.parse(await readFile(reportPath, 'utf8')) as PretrainReport) : undefined;
  const f = (x: unknown) => (typeof x === 'number' ? x.toFixed(3) : '-');
  const lines = [`k3m-kit pipeline summary (${workDir})`, '', formatStageTable(stages), ''];
  if (run) {
    const v = run.validationLast;
    lines.push(
      `training run ${run.run}: ${run.steps} steps over ${run.epochsRun} epochs on ${run.backend}, ${run.written} records per epoch`,
      `  train loss        ${f(run.trainLossFirst.loss)} -> ${f(run.trainLossLast.loss)}`,
      ...LOSS_NAMES.map((n) => `  val ${n.padEnd(15)}${f(run.validationFirst?.losses[n])} -> ${f(v?.losses[n])}`),
      `  val accuracy      title ${f(v?.accuracy.title_mlm)}, knowledge ${f(v?.accuracy.knowledge_mlm)}, structure ${f(v?.accuracy.structure)}`,
      `  ... answer hidden title ${f(v?.accuracy.title_mlm_hidden)}, knowledge ${f(v?.accuracy.knowledge_mlm_hidden)} (positions whose input is [MASK] or a random id)`,
      `  checkpoint        ${join(run.runDir, 'model.safetensors')}`,
      `  loss curve        ${join(run.runDir, 'loss-curve.svg')}`,
    );
  } else lines.push(`no training report at ${reportPath}`);
  lines.push(`  reports           ${join(workDir, 'reports')}/`, `  rejected records  ${join(workDir, 'rejects')}/`);
  return { text: lines.join('\n'), json: { workDir, stages, run: run ?? null } };
}

/**
 * @file `k3m-slurm submit`: writes one sbatch script per step under `<work-dir>/slurm/scripts/`,
 * submits them in order, each with `--dependency=afterok:` on the jobs of the steps it waits for,
 * and records the job ids in `<work-dir>/slurm/jobs.json`. With `dryRun` it submits nothing and
 * returns the scripts and the sbatch commands it would run.
 */
import { stat, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseInputSpec } from '@k3m-kit/raw-ingest';
import { UsageError, writeFileAtomic } from '@k3m-kit/core';
import { readJobsFile, writeJobsFile, STAMP_FILE, type JobsFile } from './jobs-file.ts';
import { planSteps, type PipelineOptions, type PlannedStep, type StepName } from './pipeline.ts';
import { renderScript, SLURM_DIR, type ClusterOptions } from './sbatch-script.ts';
import { ACTIVE_STATES, sbatch, sbatchArgv, scancel, squeue } from './scheduler.ts';

export interface SubmitOptions {
  pipeline: PipelineOptions;
  cluster: ClusterOptions;
  /** The checkout whose node_modules/.bin the jobs run (on the shared filesystem). */
  repoRoot: string;
  dryRun: boolean;
}

export interface SubmittedStep {
  name: StepName;
  script: string;
  /** The script's text. */
  text: string;
  argv: string[];
  /** The job id; absent in a dry run. */
  jobId?: string;
}

/** The script path of a step (resume writes its own variant beside it). */
export const scriptPath = (workDir: string, step: StepName, variant = '') => join(workDir, SLURM_DIR, 'scripts', `${step}${variant}.sbatch`);

/** `afterok:` on every job of the listed steps, or undefined when there are none. */
export function afterOk(ids: readonly string[]): string | undefined {
  return ids.length ? `afterok:${ids.join(':')}` : undefined;
}

async function checkInputs(inputs: readonly string[]): Promise<void> {
  if (!inputs.length) throw new UsageError('--input: at least one FILE[:train|:val] is required');
  for (const i of inputs) {
    const { path } = parseInputSpec(i);
    const s = await stat(path).catch(() => undefined);
    if (!s?.isFile()) throw new UsageError(`--input ${i}: no such file`);
  }
}

/**
 * Submits (or, with `dryRun`, only renders) the whole pipeline.
 * @example await submit({ pipeline: { workDir: '/shared/w', inputs: ['/shared/raw.tsv'], shards: 64, stageArgs: {} }, cluster, repoRoot, dryRun: false })
 */
export async function submit(o: SubmitOptions): Promise<SubmittedStep[]> {
  const { pipeline: p, cluster: c, repoRoot } = o;
  await checkInputs(p.inputs);
  const steps = planSteps(p.shards);
  const render = (s: PlannedStep) => ({ name: s.name, script: scriptPath(p.workDir, s.name), text: renderScript(s, p, c, repoRoot) });

  if (o.dryRun) {
    return steps.map((s) => {
      const r = render(s);
      return { ...r, argv: sbatchArgv(r.script, { dependency: afterOk(s.after.map((a) => `<${a}>`)) }) };
    });
  }

  const previous = await readJobsFile(p.workDir);
  if (previous) {
    const ids = new Set(previous.steps.flatMap((s) => s.jobs.map((j) => j.jobId)));
    const active = (await squeue()).filter((e) => ids.has(e.jobId) && ACTIVE_STATES.includes(e.state));
    if (active.length) {
      const list = [...new Set(active.map((e) => e.jobId))].join(', ');
      throw new UsageError(`--work-dir ${p.workDir}: jobs ${list} of an earlier submission are still queued or running (k3m-slurm resume, or scancel them first)`);
    }
  }

  await mkdir(join(p.workDir, SLURM_DIR, 'scripts'), { recursive: true });
  await mkdir(join(p.workDir, SLURM_DIR, 'logs'), { recursive: true });
  // Reports older than this stamp belong to an earlier run and are not taken as done.
  await writeFile(join(p.workDir, SLURM_DIR, STAMP_FILE), '');

  const jobs: JobsFile = {
    version: 1,
    workDir: p.workDir,
    repoRoot,
    pipeline: { inputs: [...p.inputs], shards: p.shards, stageArgs: Object.fromEntries(Object.entries(p.stageArgs).map(([k, v]) => [k, [...v]])) },
    cluster: { ...c, sbatch: [...c.sbatch] },
    steps: [],
  };
  const ids = new Map<StepName, string>();
  const out: SubmittedStep[] = [];
  try {
    for (const s of steps) {
      const r = render(s);
      await writeFileAtomic(r.script, r.text);
      const dependency = afterOk(s.after.map((a) => ids.get(a)!));
      const argv = sbatchArgv(r.script, { dependency });
      const jobId = await sbatch(r.script, { dependency });
      ids.set(s.name, jobId);
      out.push({ ...r, argv, jobId });
      jobs.steps.push({
        name: s.name,
        sharded: s.sharded,
        script: r.script,
        jobs: [{ jobId, tasks: s.sharded ? Array.from({ length: p.shards }, (_, i) => i) : null, dependency: dependency ?? null, argv, submittedAt: new Date().toISOString() }],
      });
    }
  } catch (e) {
    // All or nothing: a half-submitted chain would wait forever on the missing step.
    await scancel([...ids.values()]).catch(() => undefined);
    throw e;
  }
  await writeJobsFile(jobs);
  return out;
}

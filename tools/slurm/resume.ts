/**
 * @file `k3m-slurm resume`: resubmits what did not finish. A shard is left alone when its report
 * is written (done) or its job has started and is still running; every other one (failed,
 * cancelled, timed out, killed, or still pending behind a dependency that can no longer be met)
 * is cancelled if queued and submitted again, alone (`sbatch --array=<shards>`), with its
 * downstream steps chained behind it. Each stage resumes a shard from its own checkpoint
 * (segment status, feature parts, LMDB commit marker; pretrain with `--resume`), so nothing is
 * done twice and nothing is lost.
 */
import { IoError, UsageError, writeFileAtomic } from '@k3m-kit/core';
import { readJobsFile, writeJobsFile, jobsFilePath } from './jobs-file.ts';
import { isDone, pipelineState, type StepState } from './pipeline-state.ts';
import { planSteps, type StepName } from './pipeline.ts';
import { renderScript } from './sbatch-script.ts';
import { STARTED_STATES, WAITING_STATES, sbatch, sbatchArgv, scancel, squeue, type QueueEntry } from './scheduler.ts';
import { afterOk, scriptPath } from './submit.ts';


export interface ResumeStep {
  name: StepName;
  /** Shards submitted again (sharded steps), or null for a single job; absent: nothing resubmitted. */
  tasks?: number[] | null;
  /** Jobs or array tasks still running that the downstream steps now wait for (`12`, `12_3`). */
  kept: string[];
  /** Queued jobs or tasks cancelled before resubmitting them. */
  cancelled: string[];
  dependency?: string;
  argv?: string[];
  jobId?: string;
}

/** How long resume waits for killed jobs to finish ending (Slurm's KillWait is 30 s by default). */
const SETTLE_MS = 120_000;

const idOf = (jobId: string, shard: number | null) => (shard === null ? jobId : `${jobId}_${shard}`);

/**
 * The queue once none of `ids` is COMPLETING. A killed job stays COMPLETING until its processes
 * are gone; resubmitting its shard before then could run it twice at once.
 */
async function settledQueue(ids: ReadonlySet<string>, waitMs: number): Promise<QueueEntry[]> {
  const end = Date.now() + waitMs;
  for (;;) {
    const q = await squeue();
    const ending = q.filter((e) => ids.has(e.jobId) && e.state === 'COMPLETING');
    if (!ending.length) return q;
    if (Date.now() > end) {
      const list = ending.map((e) => idOf(e.jobId, e.task)).join(', ');
      throw new IoError('squeue', `jobs ${list} are still ending after ${waitMs / 1000} s; run resume again once they are gone`);
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/** What resume does with each step, from the pipeline's state. */
export function resumePlan(states: readonly StepState[]): ResumeStep[] {
  return states.map((st) => {
    const step: ResumeStep = { name: st.name, kept: [], cancelled: [] };
    const redo: (number | null)[] = [];
    for (const s of st.shards) {
      if (isDone(s)) continue;
      const q = s.queue;
      if (q && STARTED_STATES.includes(q.state)) {
        step.kept.push(idOf(q.jobId, s.shard));
        continue;
      }
      if (q && WAITING_STATES.includes(q.state)) step.cancelled.push(idOf(q.jobId, s.shard));
      redo.push(s.shard);
    }
    if (redo.length) step.tasks = st.sharded ? (redo as number[]) : null;
    return step;
  });
}

/**
 * Resubmits the unfinished shards and steps of the pipeline in `workDir` (or, with `dryRun`,
 * only says what it would do).
 * @example const steps = await resume('/shared/w', { dryRun: false });
 */
export async function resume(workDir: string, o: { dryRun: boolean }): Promise<ResumeStep[]> {
  const jobs = await readJobsFile(workDir);
  if (!jobs) throw new UsageError(`--work-dir ${workDir}: no ${jobsFilePath(workDir)} (run k3m-slurm submit first)`);
  const ids = new Set(jobs.steps.flatMap((s) => s.jobs.map((j) => j.jobId)));
  const states = await pipelineState(jobs, await settledQueue(ids, SETTLE_MS));
  const plan = resumePlan(states);
  const planned = planSteps(jobs.pipeline.shards);
  const p = { ...jobs.pipeline, workDir: jobs.workDir };
  if (!o.dryRun) await scancel(plan.flatMap((s) => s.cancelled));

  // What each step's downstream waits for: its new job and its shards still running.
  const waitFor = new Map<StepName, string[]>();
  for (const [i, step] of plan.entries()) {
    const def = planned[i]!;
    const deps = def.after.flatMap((a) => waitFor.get(a) ?? []);
    if (step.tasks !== undefined) {
      const variant = step.name === 'pretrain' ? '-resume' : '';
      const script = scriptPath(workDir, step.name, variant);
      const array = step.tasks?.join(',');
      step.dependency = afterOk(deps);
      step.argv = sbatchArgv(script, { array, dependency: step.dependency });
      if (!o.dryRun) {
        await writeFileAtomic(script, renderScript(def, p, jobs.cluster, jobs.repoRoot, step.name === 'pretrain'));
        step.jobId = await sbatch(script, { array, dependency: step.dependency });
        jobs.steps
          .find((s) => s.name === step.name)!
          .jobs.push({ jobId: step.jobId, tasks: step.tasks ?? null, dependency: step.dependency ?? null, argv: step.argv, submittedAt: new Date().toISOString() });
        // Record each job as soon as it exists, so a failure part-way leaves a true jobs.json.
        await writeJobsFile(jobs);
      }
    }
    waitFor.set(step.name, [...step.kept, ...(step.tasks !== undefined ? [step.jobId ?? `<${step.name}>`] : [])]);
  }
  return plan;
}

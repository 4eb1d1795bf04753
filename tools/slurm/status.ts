/**
 * @file `k3m-slurm status`: one row per step with its jobs, what Slurm says about them, how many
 * shards have written their report, and the counts those reports give.
 */
import { UsageError } from '@k3m-kit/core';
import { jobsFilePath, readJobsFile } from './jobs-file.ts';
import { isDone, pipelineState, type StepState } from './pipeline-state.ts';
import { ACTIVE_STATES, STARTED_STATES, squeue } from './scheduler.ts';

export interface StepStatus {
  step: string;
  /** Current job ids (array tasks as `id_i` when resubmitted alone). */
  jobs: string[];
  /** Slurm states of the current jobs, counted (e.g. {RUNNING: 2, PENDING: 1}); empty when no longer queued. */
  slurm: Record<string, number>;
  /** Shards (or 1 for a single job) whose report is written, of how many. */
  done: number;
  of: number;
  /**
   * failed: a shard ended without its report (resume); blocked: waits on a step that failed;
   * unknown: not done, and squeue could not be asked.
   */
  state: 'done' | 'failed' | 'running' | 'blocked' | 'waiting' | 'not started' | 'unknown';
  /** Summed over the written reports. */
  in: number;
  written: number;
  rejected: number;
  reconciles: boolean;
}

function summarise(st: StepState, queueKnown: boolean): StepStatus {
  const slurm: Record<string, number> = {};
  for (const s of st.shards) if (s.queue && !isDone(s)) slurm[s.queue.state] = (slurm[s.queue.state] ?? 0) + 1;
  const reports = st.shards.flatMap((s) => (s.report ? [s.report.counts] : []));
  const done = reports.length;
  const of = st.shards.length;
  const jobs = [...new Set(st.shards.flatMap((s) => (s.job ? [s.job.jobId] : [])))];
  const states = st.shards.filter((s) => !isDone(s)).map((s) => (s.queue ? s.queue.state : s.job ? 'GONE' : 'NONE'));
  // Ended without a report, or no longer listed by the controller without one: did not finish.
  const failed = states.some((k) => k === 'GONE' || (k !== 'NONE' && !ACTIVE_STATES.includes(k)));
  const blocked = st.shards.some((s) => !isDone(s) && s.queue?.reason === 'DependencyNeverSatisfied');
  const state: StepStatus['state'] =
    done === of ? 'done'
    : !queueKnown ? 'unknown'
    : failed ? 'failed'
    : states.some((k) => STARTED_STATES.includes(k)) ? 'running'
    : blocked ? 'blocked'
    : states.some((k) => k !== 'NONE') ? 'waiting'
    : 'not started';
  return {
    step: st.name,
    jobs,
    slurm,
    done,
    of,
    state,
    in: reports.reduce((a, r) => a + r.in, 0),
    written: reports.reduce((a, r) => a + r.written, 0),
    rejected: reports.reduce((a, r) => a + r.rejected, 0),
    reconciles: reports.every((r) => r.reconciles),
  };
}

/**
 * The status of the pipeline submitted into `workDir`. Without a reachable controller the
 * reports still count; `queueError` then says why Slurm's side is missing.
 * @example (await status('/shared/w')).steps.find((s) => s.step === 'extract')?.done
 */
export async function status(workDir: string): Promise<{ steps: StepStatus[]; queueError?: string }> {
  const jobs = await readJobsFile(workDir);
  if (!jobs) throw new UsageError(`--work-dir ${workDir}: no ${jobsFilePath(workDir)} (run k3m-slurm submit first)`);
  let queueError: string | undefined;
  const queue = await squeue().catch((e: Error) => {
    queueError = e.message;
    return [];
  });
  const steps = (await pipelineState(jobs, queue)).map((st) => summarise(st, queueError === undefined));
  return queueError === undefined ? { steps } : { steps, queueError };
}

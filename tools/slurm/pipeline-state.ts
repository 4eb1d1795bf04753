/**
 * @file Where a submitted pipeline stands, per step and shard: done when the stage wrote its
 * report (reports/<stage>*.json) after the submission, else the state Slurm shows for the job
 * that runs it now. `status` prints this; `resume` decides from it what to resubmit.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { planSteps, type StepName } from './pipeline.ts';
import { submittedAtMs, type JobRecord, type JobsFile } from './jobs-file.ts';
import type { QueueEntry } from './scheduler.ts';

/** The counts every stage report carries (StageReportBase), as status shows them. */
const ReportCountsSchema = z.object({
  in: z.number(),
  written: z.number(),
  rejected: z.number(),
  reconciles: z.boolean(),
});
export type ReportCounts = z.infer<typeof ReportCountsSchema>;

export interface ShardState {
  /** Shard index, or null for a single-job step. */
  shard: number | null;
  /** The job that runs it now (the last one submitted for it). */
  job?: JobRecord;
  /** Its entry in `squeue`, while the controller still knows the job. */
  queue?: QueueEntry;
  /** The report file, when written after the submission. */
  report?: { file: string; counts: ReportCounts };
}

export interface StepState {
  name: StepName;
  sharded: boolean;
  after: StepName[];
  shards: ShardState[];
}

/** Whether a shard is finished: its report is there. */
export const isDone = (s: ShardState): boolean => s.report !== undefined;

/** Report files of `workDir` with their modification times. */
async function reportFiles(workDir: string): Promise<Map<string, number>> {
  const dir = join(workDir, 'reports');
  const names = await readdir(dir).catch(() => [] as string[]);
  const out = new Map<string, number>();
  for (const n of names) {
    if (!n.endsWith('.json')) continue;
    const s = await stat(join(dir, n)).catch(() => undefined);
    if (s?.isFile()) out.set(n, s.mtimeMs);
  }
  return out;
}

async function readCounts(path: string): Promise<ReportCounts | undefined> {
  try {
    const parsed = ReportCountsSchema.safeParse(JSON.parse(await readFile(path, 'utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The state of every step of the pipeline in `jobs`, given the queue as `squeue()` shows it.
 * @example const steps = await pipelineState(jobs, await squeue());
 */
export async function pipelineState(jobs: JobsFile, queue: readonly QueueEntry[]): Promise<StepState[]> {
  const { workDir } = jobs;
  const n = jobs.pipeline.shards;
  const since = await submittedAtMs(workDir);
  const files = await reportFiles(workDir);
  const fresh = [...files].filter(([, mtime]) => mtime >= since).map(([name]) => name);
  const out: StepState[] = [];
  for (const step of planSteps(n)) {
    const rec = jobs.steps.find((s) => s.name === step.name);
    const indices = step.sharded ? Array.from({ length: n }, (_, i) => i) : [null];
    const shards: ShardState[] = [];
    for (const shard of indices) {
      const job = rec?.jobs.filter((j) => (shard === null ? j.tasks === null : j.tasks?.includes(shard))).at(-1);
      const q = job && queue.find((e) => e.jobId === job.jobId && e.task === shard);
      const want = step.report({ index: shard ?? 0, count: shard === null ? 1 : n });
      const file = typeof want === 'string' ? (fresh.includes(want) ? want : undefined) : fresh.filter((f) => want.test(f)).sort().at(0);
      const counts = file ? await readCounts(join(workDir, 'reports', file)) : undefined;
      shards.push({ shard, ...(job ? { job } : {}), ...(q ? { queue: q } : {}), ...(file && counts ? { report: { file, counts } } : {}) });
    }
    out.push({ name: step.name, sharded: step.sharded, after: step.after, shards });
  }
  return out;
}

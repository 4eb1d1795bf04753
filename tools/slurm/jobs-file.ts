/**
 * @file `<work-dir>/slurm/jobs.json`: what k3m-slurm submitted, so `status` and `resume` can
 * find the jobs again. Layout (2-space JSON, written atomically):
 *
 *   version 1, workDir, repoRoot, pipeline {inputs, shards, stageArgs}, cluster {partition, ...},
 *   steps: [{name, sharded, script, jobs: [{jobId, tasks, dependency, argv, submittedAt}]}]
 *
 * A step's jobs are in submission order; for each shard the last job listing it is current.
 * Beside it, `slurm/submitted` is an empty file whose modification time (set by the shared
 * filesystem's clock, like the reports') marks the submission: only reports written after it count.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { IoError, writeFileAtomic } from '@k3m-kit/core';
import { STAGE_ARG_FLAGS, STEP_NAMES, type StageArgKey } from './pipeline.ts';
import { SLURM_DIR } from './sbatch-script.ts';

export const JOBS_FILE = 'jobs.json';
export const STAMP_FILE = 'submitted';

const JobSchema = z.object({
  jobId: z.string().regex(/^\d+$/),
  /** Array task indices (= shards) of this job; null for a single job. */
  tasks: z.array(z.number().int().nonnegative()).nullable(),
  dependency: z.string().nullable(),
  argv: z.array(z.string()),
  submittedAt: z.string(),
});

const StageArgsSchema = z.object(
  Object.fromEntries(Object.keys(STAGE_ARG_FLAGS).map((k) => [k, z.array(z.string()).optional()])) as Record<StageArgKey, z.ZodOptional<z.ZodArray<z.ZodString>>>,
);

export const JobsFileSchema = z.object({
  version: z.literal(1),
  workDir: z.string(),
  repoRoot: z.string(),
  pipeline: z.object({ inputs: z.array(z.string()), shards: z.number().int().positive(), stageArgs: StageArgsSchema }),
  cluster: z.object({
    partition: z.string().optional(),
    gpuPartition: z.string().optional(),
    gpuGres: z.string(),
    account: z.string().optional(),
    time: z.string().optional(),
    sbatch: z.array(z.string()),
  }),
  steps: z.array(
    z.object({
      name: z.enum(STEP_NAMES),
      sharded: z.boolean(),
      script: z.string(),
      jobs: z.array(JobSchema),
    }),
  ),
});
export type JobsFile = z.infer<typeof JobsFileSchema>;
export type JobRecord = z.infer<typeof JobSchema>;

/** Path of jobs.json in `workDir`. */
export const jobsFilePath = (workDir: string) => join(workDir, SLURM_DIR, JOBS_FILE);

/** Serialises a jobs file. */
export function encodeJobsFile(f: JobsFile): string {
  return JSON.stringify(f, null, 2) + '\n';
}

/** Parses and validates a jobs file's text; `path` names it in errors. */
export function decodeJobsFile(text: string, path: string): JobsFile {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new IoError(path, `not valid JSON (${(e as Error).message})`);
  }
  const parsed = JobsFileSchema.safeParse(raw);
  if (!parsed.success) throw new IoError(path, `not a k3m-slurm jobs file: ${parsed.error.issues[0]!.path.join('.')}: ${parsed.error.issues[0]!.message}`);
  return parsed.data;
}

/** Reads `<workDir>/slurm/jobs.json`, or undefined when there is none. */
export async function readJobsFile(workDir: string): Promise<JobsFile | undefined> {
  const path = jobsFilePath(workDir);
  const text = await readFile(path, 'utf8').catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw new IoError(path, e);
  });
  return text === undefined ? undefined : decodeJobsFile(text, path);
}

/** Writes `<workDir>/slurm/jobs.json` atomically. */
export function writeJobsFile(f: JobsFile): Promise<void> {
  return writeFileAtomic(jobsFilePath(f.workDir), encodeJobsFile(f));
}

/** The submission time on the shared filesystem's clock (mtime of `slurm/submitted`), in ms. */
export async function submittedAtMs(workDir: string): Promise<number> {
  const path = join(workDir, SLURM_DIR, STAMP_FILE);
  try {
    return (await stat(path)).mtimeMs;
  } catch (e) {
    throw new IoError(path, e);
  }
}

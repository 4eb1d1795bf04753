/**
 * @file The Slurm commands k3m-slurm runs (`sbatch`, `squeue`, `scancel`), each a child process
 * with the caller's environment (so `SLURM_CONF` and `PATH` decide the cluster). Accounting may
 * be off, so job states come from `squeue -t all`, which knows finished jobs only for
 * `MinJobAge` (300 s by default); the stage reports are what say a step is done.
 */
import { execFile } from 'node:child_process';
import { IoError } from '@k3m-kit/core';

/** A job or array task as `squeue` shows it. */
export interface QueueEntry {
  /** Array job id (or the job id of a single job). */
  jobId: string;
  /** Array task index, or null for a single job. */
  task: number | null;
  /** PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT, ... */
  state: string;
  reason: string;
}

/** States of a job that has started and may still finish on its own. */
export const STARTED_STATES: readonly string[] = Object.freeze(['CONFIGURING', 'RUNNING', 'COMPLETING', 'SUSPENDED', 'RESIZING']);
/** States of a job that has not started yet. */
export const WAITING_STATES: readonly string[] = Object.freeze(['PENDING', 'REQUEUED']);
/** States in which a job may still start or is running. */
export const ACTIVE_STATES: readonly string[] = Object.freeze([...WAITING_STATES, ...STARTED_STATES]);

function run(cmd: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      const e = err as NodeJS.ErrnoException;
      const why = e.code === 'ENOENT' ? `${cmd} not found on PATH (run k3m-slurm where Slurm's client commands are, or use --dry-run)` : (stderr.trim() || e.message);
      reject(new IoError(`${cmd} ${args.join(' ')}`, why));
    });
  });
}

/**
 * Submits `script` and returns the job id. `array` overrides the script's `--array` (a resubmitted
 * subset); `dependency` is an sbatch dependency such as `afterok:12:13_2`.
 * @example await sbatch('/w/slurm/scripts/extract.sbatch', { dependency: 'afterok:12' })
 */
export async function sbatch(script: string, o: { array?: string; dependency?: string } = {}): Promise<string> {
  const args = ['--parsable'];
  if (o.array) args.push(`--array=${o.array}`);
  if (o.dependency) args.push(`--dependency=${o.dependency}`);
  args.push(script);
  const out = (await run('sbatch', args)).trim();
  // --parsable prints "jobid" or "jobid;cluster".
  const id = out.split(';')[0]!;
  if (!/^\d+$/.test(id)) throw new IoError(`sbatch ${script}`, `unexpected output ${JSON.stringify(out)}`);
  return id;
}

/** The sbatch argv `sbatch()` would run, for --dry-run and jobs.json. */
export function sbatchArgv(script: string, o: { array?: string; dependency?: string } = {}): string[] {
  return ['sbatch', '--parsable', ...(o.array ? [`--array=${o.array}`] : []), ...(o.dependency ? [`--dependency=${o.dependency}`] : []), script];
}

/**
 * Every job the controller still knows, array tasks one per entry (`squeue -r -t all`).
 * @example (await squeue()).filter((e) => e.jobId === '12')
 */
export async function squeue(): Promise<QueueEntry[]> {
  const out = await run('squeue', ['-h', '-r', '-t', 'all', '-o', '%i|%T|%r']);
  return out
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const [id = '', state = '', reason = ''] = l.trim().split('|');
      const m = /^(\d+)(?:_(\d+))?$/.exec(id);
      return { jobId: m?.[1] ?? id, task: m?.[2] !== undefined ? Number(m[2]) : null, state, reason };
    });
}

/** Cancels jobs or array tasks (`12`, `12_3`). */
export async function scancel(ids: readonly string[]): Promise<void> {
  if (ids.length) await run('scancel', [...ids]);
}

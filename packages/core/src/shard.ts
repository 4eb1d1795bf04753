/**
 * @file `--shard i/N` and the scheduler environment variables (design.md section 5).
 * Work is cut into numbered units (segments); shard i of N owns the units with `unit % N == i`.
 */
import { UsageError } from './errors.ts';

export interface Shard {
  readonly index: number;
  readonly count: number;
}

/** The whole job as one shard. */
export const WHOLE: Shard = Object.freeze({ index: 0, count: 1 });

/**
 * Parses `i/N`.
 * @example parseShard('1/3') // { index: 1, count: 3 }
 */
export function parseShard(text: string, option = '--shard'): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  if (!m) throw new UsageError(`${option} ${text}: expected i/N, for example 0/4`);
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (count < 1) throw new UsageError(`${option} ${text}: N must be at least 1`);
  if (index >= count) throw new UsageError(`${option} ${text}: i must be below N`);
  return { index, count };
}

/**
 * The shard this process runs: `--shard` first, then `JOB_COMPLETION_INDEX` with
 * `--num-shards` (Kubernetes Indexed Jobs), then `SLURM_ARRAY_TASK_ID` with `--num-shards` (the
 * task id is the shard), or with `SLURM_ARRAY_TASK_COUNT` (the whole array submitted at once),
 * else the whole job.
 */
export function resolveShard(
  flag: string | undefined,
  numShards: number | undefined,
  env: NodeJS.ProcessEnv = process.env,
): Shard {
  if (flag !== undefined) return parseShard(flag);
  if (env.JOB_COMPLETION_INDEX !== undefined) {
    // Without N every pod would silently run the whole job.
    if (numShards === undefined) {
      throw new UsageError(`--num-shards: required with JOB_COMPLETION_INDEX=${env.JOB_COMPLETION_INDEX} (set it to the Indexed Job's completions)`);
    }
    return parseShard(`${env.JOB_COMPLETION_INDEX}/${numShards}`, 'JOB_COMPLETION_INDEX/--num-shards');
  }
  if (env.SLURM_ARRAY_TASK_ID !== undefined && numShards !== undefined) {
    // A resubmitted subset (`sbatch --array=1`) has SLURM_ARRAY_TASK_COUNT=1: N must come from --num-shards.
    return parseShard(`${env.SLURM_ARRAY_TASK_ID}/${numShards}`, 'SLURM_ARRAY_TASK_ID/--num-shards');
  }
  if (env.SLURM_ARRAY_TASK_ID !== undefined && env.SLURM_ARRAY_TASK_COUNT !== undefined) {
    // Slurm arrays may start at SLURM_ARRAY_TASK_MIN (often 1); shards are zero-based.
    const min = Number(env.SLURM_ARRAY_TASK_MIN ?? 0);
    return parseShard(
      `${Number(env.SLURM_ARRAY_TASK_ID) - min}/${env.SLURM_ARRAY_TASK_COUNT}`,
      'SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT',
    );
  }
  return WHOLE;
}

/** Whether unit number `unit` belongs to `shard`. */
export function ownsUnit(shard: Shard, unit: number): boolean {
  return unit % shard.count === shard.index;
}

/** A file-name suffix for per-shard outputs: '' for the whole job, `.shard-1-of-3` otherwise. */
export function shardSuffix(shard: Shard): string {
  return shard.count === 1 ? '' : `.shard-${shard.index}-of-${shard.count}`;
}

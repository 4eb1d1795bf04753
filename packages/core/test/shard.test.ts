import { describe, expect, it } from 'vitest';
import { UsageError } from '../src/errors.ts';
import { ownsUnit, parseShard, resolveShard, shardSuffix, WHOLE } from '../src/shard.ts';

describe('shards', () => {
  it('parses i/N and names the option on a bad value', () => {
    expect(parseShard('1/3')).toEqual({ index: 1, count: 3 });
    expect(() => parseShard('3/3')).toThrow(/--shard 3\/3: i must be below N/);
    expect(() => parseShard('1-3')).toThrow(UsageError);
    expect(() => parseShard('0/0')).toThrow(/N must be at least 1/);
  });

  it('resolves --shard, then JOB_COMPLETION_INDEX with --num-shards, then Slurm, else the whole job', () => {
    expect(resolveShard('2/4', undefined, { SLURM_ARRAY_TASK_ID: '0', SLURM_ARRAY_TASK_COUNT: '9' })).toEqual({ index: 2, count: 4 });
    expect(resolveShard(undefined, 5, { JOB_COMPLETION_INDEX: '3' })).toEqual({ index: 3, count: 5 });
    expect(resolveShard(undefined, undefined, { SLURM_ARRAY_TASK_ID: '2', SLURM_ARRAY_TASK_COUNT: '3', SLURM_ARRAY_TASK_MIN: '1' })).toEqual({ index: 1, count: 3 });
    expect(resolveShard(undefined, undefined, {})).toEqual(WHOLE);
  });

  it('takes N from --num-shards for a Slurm task of a resubmitted subset (its task count is 1)', () => {
    expect(resolveShard(undefined, 3, { SLURM_ARRAY_TASK_ID: '1', SLURM_ARRAY_TASK_COUNT: '1', SLURM_ARRAY_TASK_MIN: '1' })).toEqual({ index: 1, count: 3 });
  });

  it('refuses JOB_COMPLETION_INDEX without --num-shards instead of running the whole job in every pod', () => {
    expect(() => resolveShard(undefined, undefined, { JOB_COMPLETION_INDEX: '1' })).toThrow(/--num-shards: required with JOB_COMPLETION_INDEX=1/);
  });

  it('splits units by modulo and names per-shard files', () => {
    const s = { index: 1, count: 3 };
    expect([0, 1, 2, 3, 4, 5, 6, 7].filter((u) => ownsUnit(s, u))).toEqual([1, 4, 7]);
    expect(shardSuffix(s)).toBe('.shard-1-of-3');
    expect(shardSuffix(WHOLE)).toBe('');
  });
});

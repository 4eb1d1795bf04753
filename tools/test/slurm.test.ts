/**
 * k3m-slurm without a cluster: the step graph, the sbatch scripts (checked by bash itself), the
 * CLI's dry run and option errors, what `status` counts as done (reports written after the
 * submission only), and what `resume` resubmits for each shard state. The real scheduler is
 * exercised by test/slurm-cluster.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, mkdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  decodeJobsFile,
  encodeJobsFile,
  planSteps,
  renderScript,
  resumePlan,
  shellWord,
  splitStageArgs,
  stepCommand,
  type ClusterOptions,
  type JobsFile,
  type PipelineOptions,
} from '@k3m-kit/tools';
import { pipelineState } from '../slurm/pipeline-state.ts';

const REPO = resolve(import.meta.dirname, '../..');
const P: PipelineOptions = { workDir: '/shared/w', inputs: ['/shared/raw/a b.tsv:train', '/shared/raw/v.tsv:val'], shards: 3, stageArgs: { extract: ['--preset', 'small-c4'], convert: ['--split', 'train'] } };
const C: ClusterOptions = { partition: 'cpu', gpuPartition: 'gpu', gpuGres: 'gpu:1', account: 'proj', time: '02:00:00', sbatch: ['--mem=8G'] };

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'k3m-slurm-unit-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** The CLI, with a PATH that holds no Slurm command. */
function cli(args: string[]) {
  return spawnSync(process.execPath, [join(REPO, 'tools/bin/k3m-slurm.js'), ...args], { cwd: REPO, encoding: 'utf8', env: { ...process.env, PATH: root } });
}

describe('the step graph', () => {
  it('chains every stage with afterok, kg-triples beside extract', () => {
    expect(planSteps(3).map((s) => [s.name, s.sharded, s.after])).toEqual([
      ['build-data', true, []],
      ['build-data-merge', false, ['build-data']],
      ['kg-triples', false, ['build-data-merge']],
      ['extract', true, ['build-data-merge']],
      ['extract-merge', false, ['extract']],
      ['convert', true, ['kg-triples', 'extract-merge']],
      ['convert-merge', false, ['convert']],
      ['pretrain', false, ['convert-merge']],
    ]);
  });

  it('drops the merges with one shard and waits for what they waited for', () => {
    expect(planSteps(1).map((s) => [s.name, s.after])).toEqual([
      ['build-data', []],
      ['kg-triples', ['build-data']],
      ['extract', ['build-data']],
      ['convert', ['kg-triples', 'extract']],
      ['pretrain', ['convert']],
    ]);
  });

  it('gives sharded steps the array index as shard, and merge the splits convert wrote', () => {
    expect(stepCommand('extract', P, 'slurm')).toEqual(['region-features', 'extract', '--work-dir', '/shared/w', '--shard', '"$SLURM_ARRAY_TASK_ID/3"', '--preset', 'small-c4']);
    expect(stepCommand('extract', P, 'kubernetes')).toContain('--num-shards');
    expect(stepCommand('convert-merge', P, 'slurm')).toEqual(['lmdb-writer', 'merge', '--work-dir', '/shared/w', '--num-shards', '3', '--split', 'train']);
    expect(stepCommand('pretrain', P, 'slurm')).not.toContain('--resume');
    expect(stepCommand('pretrain', P, 'slurm', true)).toContain('--resume');
  });
});

describe('stage arguments and shell words', () => {
  it('splits with shell quoting and refuses what k3m-slurm owns or cannot pass', () => {
    expect(splitStageArgs(`--name 'my run' --seed "7"`, '--pretrain')).toEqual(['--name', 'my run', '--seed', '7']);
    expect(() => splitStageArgs('--work-dir /x', '--extract')).toThrow(/--work-dir is set by k3m-slurm/);
    expect(() => splitStageArgs('--shard=1/2', '--extract')).toThrow(/--shard is set by k3m-slurm/);
    expect(() => splitStageArgs('--steps 2; rm -rf /', '--pretrain')).toThrow(/no shell operators/);
    expect(() => splitStageArgs('--vocab *.txt', '--pretrain')).toThrow(/no shell operators or globs/);
  });

  it('quotes only what needs it', () => {
    expect(shellWord('/a/b.tsv:train')).toBe('/a/b.tsv:train');
    expect(shellWord("it's")).toBe(`'it'\\''s'`);
    expect(shellWord('$HOME')).toBe(`'$HOME'`);
  });
});

describe('sbatch scripts', () => {
  it('say partition, GPU, account, time, array, log and directory in #SBATCH lines, and pass bash -n', async () => {
    for (const step of planSteps(3)) {
      const text = renderScript(step, P, C, '/shared/k3m-kit');
      const sb = text.split('\n').filter((l) => l.startsWith('#SBATCH '));
      expect(sb).toContain(`#SBATCH --job-name=k3m-${step.name}`);
      expect(sb).toContain(step.gpu ? '#SBATCH --partition=gpu' : '#SBATCH --partition=cpu');
      expect(sb.includes('#SBATCH --gres=gpu:1')).toBe(step.gpu);
      expect(sb.includes('#SBATCH --array=0-2')).toBe(step.sharded);
      expect(sb).toEqual(expect.arrayContaining(['#SBATCH --account=proj', '#SBATCH --time=02:00:00', '#SBATCH --mem=8G', '#SBATCH --chdir=/shared/k3m-kit']));
      expect(sb).toContain(`#SBATCH --output=/shared/w/slurm/logs/${step.name}-${step.sharded ? '%A_%a' : '%j'}.out`);
      const file = join(root, `${step.name}.sbatch`);
      await writeFile(file, text);
      expect(spawnSync('bash', ['-n', file]).status).toBe(0);
    }
  });

  it('run the command with the array index as the shard and quoted paths', async () => {
    const step = planSteps(3)[0]!;
    const file = join(root, 'echo.sbatch');
    // The script's last line, with exec replaced by echo and the workspace bins by nothing.
    const text = renderScript(step, P, C, '/shared/k3m-kit').replace(/^exec /m, 'echo ');
    await writeFile(file, text);
    const r = spawnSync('bash', [file], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin', SLURM_ARRAY_TASK_ID: '2' } });
    expect(r.stdout.trim()).toBe('raw-ingest build-data --work-dir /shared/w --input /shared/raw/a b.tsv:train --input /shared/raw/v.tsv:val --shard 2/3');
  });
});

describe('the CLI', () => {
  it('--dry-run prints every script and the sbatch commands with their dependencies, without Slurm', async () => {
    const raw = join(root, 'raw.tsv');
    await writeFile(raw, '');
    const r = cli(['submit', '--work-dir', join(root, 'w'), '--input', raw, '--shards', '2', '--gpu-partition', 'gpu', '--extract', '--prefetch 2', '--dry-run']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.match(/^#!\/bin\/bash$/gm)).toHaveLength(8);
    expect(r.stdout).toMatch(/^# ---- convert: sbatch --parsable --dependency=afterok:<kg-triples>:<extract-merge> .*convert\.sbatch$/m);
    expect(r.stdout).toMatch(/^exec region-features extract .* --shard "\$SLURM_ARRAY_TASK_ID\/2" --prefetch 2$/m);
  });

  it('answers bad options with exit 2 and one line naming the option', () => {
    const cases: [string[], RegExp][] = [
      [['submit', '--input', '/nonexistent.tsv', '--shards', '2', '--dry-run'], /--input \/nonexistent\.tsv: no such file/],
      [['submit', '--input', '/etc/hostname', '--shards', '0', '--dry-run'], /--shards 0: expected an integer >= 1/],
      [['submit', '--input', '/etc/hostname', '--shards', '2', '--partition', 'a b', '--dry-run'], /--partition "a b": expected one word/],
      [['status', '--work-dir', root], /no .*jobs\.json \(run k3m-slurm submit first\)/],
    ];
    for (const [args, re] of cases) {
      const r = cli(args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(re);
    }
  });

  it('says where sbatch is missing with exit 1', async () => {
    const raw = join(root, 'raw2.tsv');
    await writeFile(raw, '');
    const r = cli(['submit', '--work-dir', join(root, 'w2'), '--input', raw, '--shards', '2']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/sbatch not found on PATH/);
  });
});

/** A jobs file for a 3-shard pipeline whose every step got one job. */
function jobsFile(workDir: string): JobsFile {
  let id = 100;
  return {
    version: 1,
    workDir,
    repoRoot: '/shared/k3m-kit',
    pipeline: { inputs: ['/x.tsv'], shards: 3, stageArgs: {} },
    cluster: { gpuGres: 'gpu:1', sbatch: [] },
    steps: planSteps(3).map((s) => ({
      name: s.name,
      sharded: s.sharded,
      script: `/s/${s.name}.sbatch`,
      jobs: [{ jobId: String(id++), tasks: s.sharded ? [0, 1, 2] : null, dependency: null, argv: [], submittedAt: '2026-01-01T00:00:00Z' }],
    })),
  };
}

describe('status and resume decisions', () => {
  let w: string;
  const report = (name: string, counts = { in: 5, written: 4, rejected: 1, reconciles: true }) => writeFile(join(w, 'reports', name), JSON.stringify(counts));

  beforeAll(async () => {
    w = join(root, 'state');
    await mkdir(join(w, 'reports'), { recursive: true });
    await mkdir(join(w, 'slurm'), { recursive: true });
    // A report from an earlier run, older than the submission: not done.
    await report('kg-triples.json');
    await utimes(join(w, 'reports', 'kg-triples.json'), new Date(2000, 0, 1), new Date(2000, 0, 1));
    await writeFile(join(w, 'slurm', 'submitted'), '');
    for (const name of ['build-data.shard-0-of-3.json', 'build-data.shard-1-of-3.json', 'build-data.shard-2-of-3.json', 'build-data.json', 'region-features.shard-1-of-3.json']) await report(name);
  });

  it('counts a shard done by its report written after the submission, and reads its counts', async () => {
    const states = await pipelineState(jobsFile(w), []);
    const done = Object.fromEntries(states.map((s) => [s.name, s.shards.map((x) => x.report !== undefined)]));
    expect(done).toMatchObject({ 'build-data': [true, true, true], 'build-data-merge': [true], 'kg-triples': [false], extract: [false, true, false] });
    expect(states[0]!.shards[0]!.report?.counts).toEqual({ in: 5, written: 4, rejected: 1, reconciles: true });
  });

  it('resubmits failed and waiting shards, keeps running ones, leaves done ones', async () => {
    // kg-triples (102) failed and left the queue; extract (103) shard 0 running, 1 done, 2 cancelled; the rest wait.
    const queue = [
      { jobId: '103', task: 0, state: 'RUNNING', reason: 'None' },
      { jobId: '103', task: 2, state: 'CANCELLED', reason: 'None' },
      { jobId: '104', task: null, state: 'PENDING', reason: 'DependencyNeverSatisfied' },
      ...[0, 1, 2].map((task) => ({ jobId: '105', task, state: 'PENDING', reason: 'Dependency' })),
      { jobId: '106', task: null, state: 'PENDING', reason: 'Dependency' },
      { jobId: '107', task: null, state: 'PENDING', reason: 'Dependency' },
    ];
    const plan = resumePlan(await pipelineState(jobsFile(w), queue));
    expect(plan.map((s) => [s.name, s.tasks, s.kept, s.cancelled])).toEqual([
      ['build-data', undefined, [], []],
      ['build-data-merge', undefined, [], []],
      ['kg-triples', null, [], []],
      ['extract', [2], ['103_0'], []],
      ['extract-merge', null, [], ['104']],
      ['convert', [0, 1, 2], [], ['105_0', '105_1', '105_2']],
      ['convert-merge', null, [], ['106']],
      ['pretrain', null, [], ['107']],
    ]);
  });
});

describe('status without a reachable controller', () => {
  it('still shows the report counts, says the Slurm states are unknown, and exits 0', async () => {
    const w = join(root, 'state');
    await writeFile(join(w, 'slurm', 'jobs.json'), encodeJobsFile(jobsFile(w)));
    const r = cli(['status', '--work-dir', w]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^build-data\s+done\s+3\/3\s+-\s+100\s+15\s+12\s+3\s+true$/m);
    expect(r.stdout).toMatch(/^extract\s+unknown\s+1\/3\s/m);
    expect(r.stderr).toMatch(/Slurm states unknown \(.*squeue not found on PATH/);
  });
});

describe('jobs.json', () => {
  it('round-trips and names what is wrong with a bad one', () => {
    const f = jobsFile('/w');
    expect(decodeJobsFile(encodeJobsFile(f), 'jobs.json')).toEqual(f);
    expect(() => decodeJobsFile('{', 'jobs.json')).toThrow(/jobs\.json: not valid JSON/);
    expect(() => decodeJobsFile(JSON.stringify({ ...f, steps: [{ ...f.steps[0], name: 'nope' }] }), 'jobs.json')).toThrow(/jobs\.json: not a k3m-slurm jobs file: steps\.0\.name/);
  });
});

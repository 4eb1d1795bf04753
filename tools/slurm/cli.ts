/**
 * @file `k3m-slurm`: the command line over {@link submit}, {@link status} and {@link resume}.
 *
 *   k3m-slurm submit --work-dir DIR --input FILE[:train|:val]... --shards N [--partition P]
 *     [--gpu-partition G] [--account A] [--time T] [--sbatch OPT]... [--<stage> 'ARGS']... [--dry-run]
 *   k3m-slurm status --work-dir DIR
 *   k3m-slurm resume --work-dir DIR [--dry-run]
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, Option } from 'commander';
import { UsageError, intArg, runCli } from '@k3m-kit/core';
import { parseInputSpec } from '@k3m-kit/raw-ingest';
import { STAGE_ARG_FLAGS, splitStageArgs, type StageArgKey } from './pipeline.ts';
import { resume } from './resume.ts';
import { status, type StepStatus } from './status.ts';
import { submit } from './submit.ts';

/** The checkout this command runs from: jobs run its node_modules/.bin. */
const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

const collect = (v: string, prev: string[] = []) => [...prev, v];

/** A value that goes on an `#SBATCH` line: one word. */
const word = (option: string) => (v: string) => {
  if (!/^\S+$/.test(v)) throw new UsageError(`${option} ${JSON.stringify(v)}: expected one word without spaces`);
  return v;
};

/** Prints rows as aligned columns. */
function columns(rows: readonly (readonly string[])[]): string {
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd()).join('\n');
}

function statusTable(rows: readonly StepStatus[]): string {
  const slurm = (s: StepStatus) => Object.entries(s.slurm).map(([k, v]) => `${k} ${v}`).join(', ') || '-';
  return columns([
    ['step', 'state', 'reports', 'slurm', 'jobs', 'in', 'written', 'rejected', 'reconciles'],
    ...rows.map((s) => [s.step, s.state, `${s.done}/${s.of}`, slurm(s), s.jobs.join(',') || '-', String(s.in), String(s.written), String(s.rejected), s.done ? String(s.reconciles) : '-']),
  ]);
}

const program = new Command().description('Run the k3m-kit pipeline as Slurm jobs on a shared filesystem: array jobs per sharded stage, chained with afterok');

const sub = program
  .command('submit')
  .description('write one sbatch script per step under <work-dir>/slurm/scripts/, submit them chained with --dependency=afterok, record the job ids in <work-dir>/slurm/jobs.json')
  .option('--work-dir <dir>', 'work directory on the shared filesystem', 'work')
  .option('--input <file[:train|:val]>', 'raw TSV and its split role, as build-data takes it (repeatable)', collect, [])
  .addOption(new Option('--shards <n>', 'array tasks per sharded stage (build-data, extract, convert)').argParser(intArg('--shards', 1)).makeOptionMandatory())
  .addOption(new Option('--partition <p>', 'partition of the jobs (of the CPU steps when --gpu-partition is given)').argParser(word('--partition')))
  .addOption(new Option('--gpu-partition <g>', 'partition of extract and pretrain, which then ask for --gpu-gres').argParser(word('--gpu-partition')))
  .addOption(new Option('--gpu-gres <gres>', 'generic resource a GPU job asks for').argParser(word('--gpu-gres')).default('gpu:1'))
  .addOption(new Option('--account <a>', 'account charged').argParser(word('--account')))
  .addOption(new Option('--time <t>', 'time limit of every job (sbatch --time)').argParser(word('--time')))
  .addOption(new Option('--sbatch <option>', 'extra #SBATCH option for every job, e.g. --sbatch=--mem=16G (repeatable)').argParser((v: string, prev: string[] = []) => [...prev, word('--sbatch')(v)]).default([]));
for (const flag of Object.values(STAGE_ARG_FLAGS)) sub.option(`--${flag} <args>`, `options passed to the ${flag} stage, as one quoted string`);
sub
  .option('--dry-run', 'print the sbatch scripts and commands; submit nothing', false)
  .option('--json', 'print the submitted jobs as JSON', false)
  .action(async (o: Record<string, unknown>) => {
    const workDir = resolve(o.workDir as string);
    const inputs = (o.input as string[]).map((i) => {
      const s = parseInputSpec(i);
      return resolve(s.path) + (s.split ? `:${s.split}` : '');
    });
    const stageArgs: Partial<Record<StageArgKey, string[]>> = {};
    for (const [key, flag] of Object.entries(STAGE_ARG_FLAGS) as [StageArgKey, string][]) {
      const text = o[key] as string | undefined;
      if (text !== undefined) stageArgs[key] = splitStageArgs(text, `--${flag}`);
    }
    for (const s of o.sbatch as string[]) if (!s.startsWith('-')) throw new UsageError(`--sbatch ${s}: expected an sbatch option such as --mem=16G`);
    if (!existsSync(join(REPO_ROOT, 'node_modules', '.bin', 'raw-ingest'))) throw new UsageError(`${REPO_ROOT}: no node_modules/.bin/raw-ingest (run npm ci in the checkout first)`);
    const steps = await submit({
      pipeline: { workDir, inputs, shards: o.shards as number, stageArgs },
      cluster: {
        partition: o.partition as string | undefined,
        gpuPartition: o.gpuPartition as string | undefined,
        gpuGres: o.gpuGres as string,
        account: o.account as string | undefined,
        time: o.time as string | undefined,
        sbatch: o.sbatch as string[],
      },
      repoRoot: REPO_ROOT,
      dryRun: o.dryRun as boolean,
    });
    if (o.json) {
      process.stdout.write(JSON.stringify(steps.map(({ text: _t, ...s }) => s), null, 2) + '\n');
    } else if (o.dryRun) {
      for (const s of steps) process.stdout.write(`# ---- ${s.name}: ${s.argv.join(' ')}\n${s.text}\n`);
    } else {
      process.stdout.write(columns([['step', 'job', 'submitted with'], ...steps.map((s) => [s.name, s.jobId!, s.argv.join(' ')])]) + '\n');
      process.stdout.write(`jobs: ${join(workDir, 'slurm', 'jobs.json')}; logs: ${join(workDir, 'slurm', 'logs')}/\n`);
    }
  });

program
  .command('status')
  .description("each step's state, its Slurm jobs and the counts of the stage reports written so far")
  .option('--work-dir <dir>', 'work directory of the submission', 'work')
  .option('--json', 'print the status as JSON', false)
  .action(async (o: { workDir: string; json: boolean }) => {
    const r = await status(resolve(o.workDir));
    process.stdout.write(o.json ? JSON.stringify(r, null, 2) + '\n' : statusTable(r.steps) + '\n');
    if (r.queueError && !o.json) process.stderr.write(`k3m-slurm: Slurm states unknown (${r.queueError}); the report counts above stand\n`);
  });

program
  .command('resume')
  .description('resubmit the shards and steps that failed or were killed (each continues from its checkpoint) and the steps after them')
  .option('--work-dir <dir>', 'work directory of the submission', 'work')
  .option('--dry-run', 'say what would be cancelled and resubmitted; change nothing', false)
  .option('--json', 'print the plan as JSON', false)
  .action(async (o: { workDir: string; dryRun: boolean; json: boolean }) => {
    const steps = await resume(resolve(o.workDir), { dryRun: o.dryRun });
    if (o.json) {
      process.stdout.write(JSON.stringify(steps, null, 2) + '\n');
      return;
    }
    const acted = steps.filter((s) => s.tasks !== undefined || s.kept.length);
    if (!steps.some((s) => s.tasks !== undefined)) {
      process.stdout.write('nothing to resume: every step is done or still running\n');
      return;
    }
    const what = (s: (typeof steps)[number]) => (s.tasks === undefined ? 'kept running' : s.tasks === null ? 'resubmitted' : `resubmitted shards ${s.tasks.join(',')}`);
    process.stdout.write(
      columns([
        ['step', 'action', 'job', 'still running', 'cancelled first', 'dependency'],
        ...acted.map((s) => [s.name, what(s), s.jobId ?? (o.dryRun ? '(dry run)' : '-'), s.kept.join(',') || '-', s.cancelled.join(',') || '-', s.dependency ?? '-']),
      ]) + '\n',
    );
  });

await runCli('k3m-slurm', program);

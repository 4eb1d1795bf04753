/**
 * @file One plain `sbatch` script per pipeline step: `#SBATCH` lines an admin can read, the
 * repository's bins on PATH, and the stage command. Dependencies are not in the script: they are
 * given on the `sbatch` command line at submission (job ids exist only then), and recorded in
 * `slurm/jobs.json`.
 */
import { join } from 'node:path';
import { STEPS, shellWord, stepCommand, type PipelineOptions, type PlannedStep } from './pipeline.ts';

/** Where the scheduler puts things, and what every job asks for. */
export interface ClusterOptions {
  partition?: string;
  gpuPartition?: string;
  /** Generic resource a GPU step asks for on the GPU partition (default `gpu:1`). */
  gpuGres: string;
  account?: string;
  time?: string;
  /** Extra `#SBATCH` options for every step, verbatim (e.g. `--mem=16G`). */
  sbatch: readonly string[];
}

/** Directory (under the work dir) for scripts, logs and jobs.json. */
export const SLURM_DIR = 'slurm';

/** The log file pattern of a step: one file per array task or job, stdout and stderr together. */
export function logPattern(workDir: string, step: PlannedStep): string {
  return join(workDir, SLURM_DIR, 'logs', step.sharded ? `${step.name}-%A_%a.out` : `${step.name}-%j.out`);
}

/**
 * The script of `step`. `repoRoot` is the checkout (with node_modules) on the shared filesystem.
 * @example renderScript(step, pipeline, cluster, '/shared/k3m-kit')
 */
export function renderScript(step: PlannedStep, p: PipelineOptions, c: ClusterOptions, repoRoot: string, resuming = false): string {
  const d = STEPS[step.name];
  const partition = step.gpu && c.gpuPartition ? c.gpuPartition : c.partition;
  const lines = ['#!/bin/bash', `#SBATCH --job-name=k3m-${step.name}`];
  if (step.sharded) lines.push(`#SBATCH --array=0-${p.shards - 1}`);
  if (partition) lines.push(`#SBATCH --partition=${partition}`);
  if (step.gpu && c.gpuPartition) lines.push(`#SBATCH --gres=${c.gpuGres}`);
  if (c.account) lines.push(`#SBATCH --account=${c.account}`);
  if (c.time) lines.push(`#SBATCH --time=${c.time}`);
  for (const o of c.sbatch) lines.push(`#SBATCH ${o}`);
  lines.push(`#SBATCH --output=${logPattern(p.workDir, step)}`, `#SBATCH --chdir=${repoRoot}`);
  lines.push(
    '#',
    `# k3m-kit step "${step.name}": ${d.bin} ${d.sub}, ${step.what}.`,
    ...(step.sharded
      ? [`# Array task i runs shard i of ${p.shards}; a failed task can be resubmitted alone (sbatch --array=i <this file>).`]
      : []),
    `# Written by k3m-slurm; outputs and reports/ under ${p.workDir}.`,
    'set -euo pipefail',
    `export PATH=${shellWord(join(repoRoot, 'node_modules', '.bin'))}:"$PATH"`,
    `exec ${stepCommand(step.name, p, 'slurm', resuming).map(shellWord).join(' ')}`,
    '',
  );
  return lines.join('\n');
}

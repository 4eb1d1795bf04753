/**
 * The commands of an nx target of k3m-model as project.json spells them, for e2e tests that run
 * a target's own steps in a temporary work directory with tiny budgets (the target's default
 * budget takes many minutes): the target's work directory is replaced, and each step can get
 * extra flags or a rewrite, picked by the program it runs.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The `&&`-joined steps of `k3m-model:<target>`. */
export function targetSteps(target: string): string[] {
  const project = JSON.parse(readFileSync(join(repoRoot, 'packages', 'k3m-model', 'project.json'), 'utf8')) as { targets: Record<string, { options: { command: string } }> };
  const t = project.targets[target];
  if (!t) throw new Error(`k3m-model has no target ${target}`);
  return t.options.command.split(' && ');
}

/** Runs one step in the repository root; throws with its output's tail when it fails. */
export function runStep(step: string): string {
  const r = spawnSync('bash', ['-c', step], { cwd: repoRoot, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`step failed (${r.status}): ${step}\n${(r.stdout + r.stderr).slice(-4000)}`);
  return r.stdout + r.stderr;
}

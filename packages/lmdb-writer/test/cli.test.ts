import { spawnSync } from 'node:child_process';
import { expect, test } from 'vitest';
import { convert, lmdbPath } from '../src/index.ts';
import { writeFixtureWorkDir } from '../src/testing.ts';
import { baseOptions, CLI, repoRoot, tempDir } from './helpers.ts';

const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { cwd: repoRoot, encoding: 'utf8' });

test('bad options exit 2 with one line naming the option; verify checks a finished LMDB', async () => {
  const bad = run('convert', '--batch-records', '0', '--quiet');
  expect(bad.status).toBe(2);
  expect(bad.stderr.trim().split('\n')).toHaveLength(1);
  expect(bad.stderr).toMatch(/--batch-records 0/);
  const workDir = tempDir('cli');
  await writeFixtureWorkDir({ workDir });
  await convert(baseOptions(workDir));
  const ok = run('verify', lmdbPath(workDir, 'train'), '--json');
  expect(ok.status, ok.stderr).toBe(0);
  expect(JSON.parse(ok.stdout)).toMatchObject({ records: 20, problems: [] });
  const missing = run('merge', '--work-dir', workDir, '--quiet');
  expect(missing.status).toBe(2);
  expect(missing.stderr).toMatch(/training_feat_part_<i>\.lmdb/);
}, 60_000);

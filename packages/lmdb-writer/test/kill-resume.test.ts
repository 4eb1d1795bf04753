/**
 * SIGKILL in the middle of `lmdb-writer convert` (the real CLI), then a rerun: the result has
 * the same records as an uninterrupted run, byte for byte, with no duplicate and no gap.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { lmdbPath, RecordReader, TensorpackLmdbReader } from '../src/index.ts';
import { writeFixtureWorkDir } from '../src/testing.ts';
import { CLI, python, pythonMissing, repoRoot, tempDir } from './helpers.ts';

const fixture = (workDir: string) =>
  writeFixtureWorkDir({
    workDir,
    featureDim: 2048,
    numClasses: 1601,
    segments: [
      { seg: 0, split: 'train', items: 500 },
      { seg: 1, split: 'val', items: 20 },
    ],
    boxes: (_s, k) => 1 + (k % 6),
  });

const args = (workDir: string) => ['convert', '--work-dir', workDir, '--batch-records', '5', '--quiet', '--json'];

/** Entries committed in a partial LMDB so far (0 while it is unreadable or absent). */
function committed(partial: string): number {
  try {
    const r = TensorpackLmdbReader.open(partial);
    const n = r.entries;
    r.close();
    return n;
  } catch {
    return 0;
  }
}

test('SIGKILL during convert, rerun: same records as an uninterrupted run, no duplicates', { timeout: 90_000 }, async () => {
  const killed = tempDir('killed');
  const clean = tempDir('clean');
  await fixture(killed);
  await fixture(clean);
  const partial = `${lmdbPath(killed, 'train')}.partial`;

  const child = spawn(process.execPath, [CLI, ...args(killed)], { cwd: repoRoot, stdio: 'ignore' });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  let done = false;
  void exited.then(() => (done = true));
  // Kill once a few commits are on disk, well before the end.
  while (!done && committed(partial) < 40) await new Promise((r) => setTimeout(r, 10));
  expect(done, 'convert finished before it could be killed: grow the fixture').toBe(false);
  child.kill('SIGKILL');
  await exited;
  expect(existsSync(partial)).toBe(true);
  expect(existsSync(lmdbPath(killed, 'train'))).toBe(false);
  const before = committed(partial) - 1; // minus the progress marker

  const rerun = spawnSync(process.execPath, [CLI, ...args(killed)], { cwd: repoRoot, encoding: 'utf8' });
  expect(rerun.status, rerun.stderr).toBe(0);
  const report = JSON.parse(rerun.stdout);
  expect(report.splits.train.resumedFrom).toBeGreaterThanOrEqual(before);
  expect(report.splits.train.resumedFrom).toBeGreaterThan(0);
  expect(report.splits.train.records).toBe(500);

  const whole = spawnSync(process.execPath, [CLI, ...args(clean)], { cwd: repoRoot, encoding: 'utf8' });
  expect(whole.status, whole.stderr).toBe(0);

  for (const split of ['train', 'val'] as const) {
    const a = RecordReader.open(lmdbPath(clean, split));
    const b = RecordReader.open(lmdbPath(killed, split));
    expect(b.length).toBe(a.length);
    const ids = new Set<string>();
    for (let i = 0; i < a.length; i++) {
      expect(b.value(i).equals(a.value(i))).toBe(true);
      ids.add(b.get(i).imageId);
    }
    expect(ids.size).toBe(b.length);
    a.close();
    b.close();
  }
  expect(readFileSync(join(killed, 'rejects/lmdb-writer.jsonl'), 'utf8')).toBe(readFileSync(join(clean, 'rejects/lmdb-writer.jsonl'), 'utf8'));
  if (!pythonMissing()) {
    const py = python('tensorpack_read_check.py', ['--lmdb', lmdbPath(killed, 'train'), '--work-dir', killed, '--split', 'train']);
    expect(py.out).toMatch(/^OK 500 records/);
  }
});

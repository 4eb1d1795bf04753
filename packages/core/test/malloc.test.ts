/**
 * core's malloc.ts: on glibc (this project's machines and CI) `keepFreedMemory` sets the trim and
 * mmap thresholds, and freed memory is reused without faulting pages in again; `K3M_MALLOPT=off`
 * keeps glibc's defaults and says so. Each case runs in its own process (the settings are
 * process-wide).
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';
import { MALLOPT_ENV } from '../src/malloc.ts';

const child = join(dirname(fileURLToPath(import.meta.url)), 'malloc-child.ts');

function run(env: Record<string, string>): { status: { applied: boolean; text: string }; faults: number } {
  const { [MALLOPT_ENV]: _, ...rest } = process.env;
  const r = spawnSync(process.execPath, ['--import', 'tsx', child], { encoding: 'utf8', env: { ...rest, ...env } });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as { status: { applied: boolean; text: string }; faults: number };
}

test('keepFreedMemory: freed blocks are reused without page faults; K3M_MALLOPT=off keeps the defaults', () => {
  const tuned = run({});
  expect(tuned.status.applied, tuned.status.text).toBe(true);
  expect(tuned.status.text).toMatch(/trim threshold 128 MiB, mmap threshold 32 MiB/);
  const plain = run({ [MALLOPT_ENV]: 'off' });
  expect(plain.status).toEqual({ applied: false, text: `glibc malloc defaults (${MALLOPT_ENV}=off)` });
  // Two rounds of 64 MiB: with glibc's defaults the freed top of the heap is handed back and
  // faulted in again (up to 16384 pages a round; a small allocation landing between the blocks
  // keeps what lies below it); kept, the rounds reuse it.
  const counts = JSON.stringify({ plain: plain.faults, tuned: tuned.faults });
  expect(plain.faults, counts).toBeGreaterThan(16384);
  expect(tuned.faults, counts).toBeLessThan(Math.min(1000, plain.faults / 10));
});

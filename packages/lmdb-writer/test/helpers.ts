/** Shared test helpers: temp dirs, the python3 probe, the CLI path. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll } from 'vitest';
import { WHOLE } from '@k3m-kit/core';
import type { ConvertOptions } from '../src/index.ts';

export const pkgRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const repoRoot = resolve(pkgRoot, '../..');
export const CLI = join(pkgRoot, 'bin/lmdb-writer.js');
export const PYTHON = '/usr/bin/python3';

const madeDirs: string[] = [];
// Each test file evaluates this module once: its temp dirs (up to 50 MB each) go when it ends.
afterAll(() => {
  for (const d of madeDirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A temp dir, removed when the test file ends. */
export const tempDir = (name: string) => {
  const d = mkdtempSync(join(tmpdir(), `lmdb-writer-${name}-`));
  madeDirs.push(d);
  return d;
};

/** Why the Python interop checks cannot run here, or undefined when they can. */
export function pythonMissing(): string | undefined {
  const r = spawnSync(PYTHON, ['-c', 'import lmdb, msgpack, msgpack_numpy, numpy'], { encoding: 'utf8' });
  if (r.error) return `${PYTHON} not found`;
  if (r.status !== 0) return `${PYTHON} lacks python3-lmdb/python3-msgpack/python3-msgpack-numpy/python3-numpy: ${r.stderr.trim().split('\n').pop()}`;
  return undefined;
}

export function python(script: string, args: string[]): { status: number | null; out: string } {
  const r = spawnSync(PYTHON, [join(pkgRoot, 'scripts', script), ...args], { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

export const baseOptions = (workDir: string, over: Partial<ConvertOptions> = {}): ConvertOptions => ({
  workDir,
  shard: WHOLE,
  missingImage: 'keep',
  fp16: false,
  clsProb: true,
  batchRecords: 7,
  batchMb: 256,
  verifySample: 8,
  quiet: true,
  // Fixtures are small: decode on the main thread unless a test asks for workers.
  workers: 0,
  ...over,
});

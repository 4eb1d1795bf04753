/**
 * The tensorpack store on lmdb-js: what is on disk (LMDB data format 1, exactly the record keys
 * plus `__keys__`, as Python's lmdb lists them), commits and resume, and the guard that refuses
 * lmdb-js's prebuilt format-2 binary. The install step (scripts/build-lmdb.js) is run for real.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { ARENAS, lmdbDataFormat, lmdbPath, TensorpackLmdbReader, TensorpackLmdbWriter, WRITE_CHUNK_BYTES } from '../src/index.ts';
import { writeFixtureWorkDir } from '../src/testing.ts';
import { CLI, pkgRoot, PYTHON, pythonMissing, repoRoot, tempDir } from './helpers.ts';

const value = (i: number) => Buffer.alloc(((i * 37) % 9000) + 1, i % 251);
const missing = pythonMissing();

/** Keys and entry count as Python's lmdb (liblmdb 0.9) sees the file, opened as tensorpack does. */
function pythonKeys(path: string): { entries: number; keys: string[] } {
  const script = [
    'import sys, json, lmdb',
    'env = lmdb.open(sys.argv[1], subdir=False, readonly=True, lock=False, readahead=False, map_size=1099511627776 * 2, max_readers=100)',
    'with env.begin() as txn:',
    '    keys = [k.decode("latin1") for k, _ in txn.cursor()]',
    '    print(json.dumps({"entries": txn.stat()["entries"], "keys": keys}))',
  ].join('\n');
  const r = spawnSync(PYTHON, ['-c', script, path], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout);
}

/** A child process whose lmdb-js loads the prebuilt binary (data format 2) instead of our build. */
const PREBUILT_ENV = { ...process.env, LMDB_PREBUILD: join(repoRoot, 'node_modules/lmdb/src') };

describe('tensorpack store on lmdb-js', () => {
  test('a progress marker until finish, then exactly the record keys and __keys__, in LMDB data format 1', async () => {
    const final = join(tempDir('tp'), 'training_feat_all.lmdb');
    const { writer } = TensorpackLmdbWriter.open(final, 'fp1');
    for (let i = 0; i < 30; i++) await writer.append(value(i));
    await writer.commit({ fingerprint: 'fp1', records: 30, lastImageId: '29_s0' });
    await writer.abandon();
    const resumed = TensorpackLmdbWriter.open(final, 'fp1');
    expect(resumed.progress?.records).toBe(30);
    expect(resumed.writer.resumedFrom).toBe(30);
    await resumed.writer.abandon();
    const fresh = TensorpackLmdbWriter.open(final, 'other inputs');
    expect(fresh.writer.resumedFrom).toBe(0);
    for (let i = 0; i < 3; i++) await fresh.writer.append(value(i));
    await fresh.writer.finish();
    expect(existsSync(`${final}.partial`)).toBe(false);
    expect(lmdbDataFormat(final)).toBe(1);
    const r = TensorpackLmdbReader.open(final);
    expect([r.length, r.entries]).toEqual([3, 4]);
    expect(r.keys).toEqual(['00000000', '00000001', '00000002']);
    expect(r.value(2).equals(value(2))).toBe(true);
    expect(r.valueTransient(1).equals(value(1))).toBe(true);
    r.close();
    if (!missing) expect(pythonKeys(final)).toEqual({ entries: 4, keys: ['00000000', '00000001', '00000002', '__keys__'] });
  });

  test('values written after the last marker (then a kill) are dropped on resume', async () => {
    const final = join(tempDir('tp-chunk'), 'x.lmdb');
    const { writer } = TensorpackLmdbWriter.open(final, 'fp');
    for (let i = 0; i < 10; i++) await writer.append(value(i));
    await writer.commit({ fingerprint: 'fp', records: 10, lastImageId: '9' });
    const big = Buffer.alloc(1 << 20, 9);
    const n = Math.ceil(WRITE_CHUNK_BYTES / big.length) + 3;
    for (let i = 0; i < n; i++) await writer.append(big);
    await writer.abandon(); // as if killed: they went to disk, no marker covers them
    const partial = TensorpackLmdbReader.open(`${final}.partial`);
    expect(partial.entries).toBeGreaterThan(11);
    partial.close();
    const again = TensorpackLmdbWriter.open(final, 'fp');
    expect(again.writer.resumedFrom).toBe(10);
    for (let i = 10; i < 13; i++) await again.writer.append(value(i));
    await again.writer.finish();
    const r = TensorpackLmdbReader.open(final);
    expect([r.length, r.entries]).toEqual([13, 14]);
    for (let i = 0; i < 13; i++) expect(r.value(i).equals(value(i))).toBe(true);
    expect(r.keys).toEqual(Array.from({ length: 13 }, (_, i) => String(i).padStart(8, '0')));
    r.close();
    if (!missing) expect(pythonKeys(final).entries).toBe(14);
  });

  test('values are copied when appended: one buffer reused for every record, arenas reused, a value larger than an arena', async () => {
    const final = join(tempDir('tp-arena'), 'x.lmdb');
    const { writer } = TensorpackLmdbWriter.open(final, 'fp');
    const reused = Buffer.alloc(3 << 20);
    // 3 MB values fill an arena every 5 records: the ring of arenas goes round twice.
    const n = Math.ceil((ARENAS * 2 * WRITE_CHUNK_BYTES) / reused.length);
    for (let i = 0; i < n; i++) await writer.append(reused.fill(i % 251));
    const huge = Buffer.alloc(WRITE_CHUNK_BYTES + 5, 77);
    await writer.append(huge);
    huge.fill(0);
    await writer.finish();
    const r = TensorpackLmdbReader.open(final);
    expect(r.length).toBe(n + 1);
    for (let i = 0; i < n; i++) {
      const v = r.valueTransient(i);
      expect([v.length, v[0], v[v.length - 1]]).toEqual([reused.length, i % 251, i % 251]);
      expect(v.every((b) => b === i % 251)).toBe(true);
    }
    expect(r.value(n).equals(Buffer.alloc(WRITE_CHUNK_BYTES + 5, 77))).toBe(true);
    r.close();
  });

  test('lmdb-js prebuilt (format 2) binary: convert exits 1 naming the fix, and writes nothing Python cannot read', async () => {
    const workDir = tempDir('prebuilt');
    await writeFixtureWorkDir({ workDir });
    const r = spawnSync(process.execPath, [CLI, 'convert', '--work-dir', workDir, '--quiet'], { cwd: repoRoot, encoding: 'utf8', env: PREBUILT_ENV });
    expect(r.status, r.stderr).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/LMDB data format 2.*npm ci/);
    expect(existsSync(lmdbPath(workDir, 'train'))).toBe(false);
  });
});

describe('install step (scripts/build-lmdb.js)', () => {
  const script = join(pkgRoot, 'scripts/build-lmdb.js');

  test('already built for data format 1: says so and builds nothing', () => {
    const r = spawnSync(process.execPath, [script], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/writes LMDB data format 1 \(already built from source\); nothing to do/);
  });

  test('format 2 and no C++ tool chain: fails, naming what is missing', () => {
    const r = spawnSync(process.execPath, [script], { encoding: 'utf8', env: { ...PREBUILT_ENV, PATH: '/nonexistent', CXX: '', CC: '' } });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/writes LMDB data format 2/);
    expect(r.stderr).toMatch(/cannot build lmdb-js: missing a C\+\+ compiler \(g\+\+\), a C compiler \(gcc\), make, Python 3 \(python3\)/);
  });
});

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildData } from '../src/build-data.ts';
import { mergeBuildData } from '../src/finalize.ts';
import { diffWorkDirs, loopbackOnlyLookup, startFaultServer, type FaultServer } from '../src/testing.ts';

const repoRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..');
const BIN = 'packages/raw-ingest/bin/raw-ingest.cjs';

/** Runs the real CLI without blocking this process, whose event loop serves the test images. */
function cli(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: repoRoot });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.once('error', fail);
    child.once('close', (status) => done({ status, stdout, stderr }));
  });
}

let server: FaultServer;
let dir: string;
let trainTsv: string;
let valTsv: string;
const N_TRAIN = 36;
const N_VAL = 12;

beforeAll(async () => {
  // Every image takes 40 ms to arrive, so a kill lands part-way.
  server = await startFaultServer({ okDelayMs: 40 });
  dir = await mkdtemp(join(tmpdir(), 'raw-ingest-cli-'));
  await mkdir(join(dir, 'raw'), { recursive: true });
  const line = (i: number, ref: string) => `item${i}\t标题${i},"q"\t${ref}\t颜色#:#色${i % 5}#;#尺码#:#${i % 3}\t类目${i % 4}`;
  const refFor = (i: number) => (i % 9 === 4 ? `${server.base}/404` : i % 11 === 6 ? 'img/none.jpg' : `${server.base}/ok/${i}.jpg`);
  trainTsv = join(dir, 'raw', 'train.tsv');
  valTsv = join(dir, 'raw', 'valid.tsv');
  const train = Array.from({ length: N_TRAIN }, (_, i) => line(i, refFor(i)));
  train.splice(5, 0, 'item3\tdup\tx.jpg\t\tc', 'short\tline');
  await writeFile(trainTsv, train.join('\n') + '\n');
  await writeFile(valTsv, Array.from({ length: N_VAL }, (_, i) => line(1000 + i, refFor(1000 + i))).join('\r\n') + '\r\n');
});

afterAll(async () => {
  await server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const runArgs = (workDir: string) => [
  'build-data', '--work-dir', workDir, '--input', `${trainTsv}:train`, '--input', `${valTsv}:val`,
  '--segment-size', '5', '--concurrency', '2', '--quiet',
];

describe('raw-ingest CLI', () => {
  it('prints --help for the program and build-data', async () => {
    const top = await cli(['--help']);
    expect(top.status).toBe(0);
    expect(top.stdout).toContain('build-data');
    expect(top.stdout).toContain('merge');
    const sub = await cli(['build-data', '--help']);
    expect(sub.status).toBe(0);
    for (const flag of ['--input', '--val-ratio', '--segment-size', '--concurrency', '--timeout-ms', '--max-redirects', '--max-bytes', '--retries', '--max-pixels', '--max-side', '--min-side', '--missing-image', '--retry-failed', '--shard', '--config']) {
      expect(sub.stdout).toContain(flag);
    }
  });

  it('exits 2 with a one-line message naming the option on bad configuration', async () => {
    const cfg = join(dir, 'bad.json');
    await writeFile(cfg, JSON.stringify({ input: [trainTsv], concurrency: 0 }));
    const cases: [string[], RegExp][] = [
      [['build-data', '--concurrency', 'many', '--input', trainTsv], /--concurrency many/],
      [['build-data', '--shard', '3/2', '--input', trainTsv], /--shard 3\/2: i must be below N/],
      [['build-data', '--work-dir', join(dir, 'w0')], /--input/],
      [['build-data', '--input', join(dir, 'nope.tsv')], /--input .*nope\.tsv: no such file/],
      [['build-data', '--config', cfg], /--concurrency 0/],
      [['build-data', '--input', trainTsv, '--missing-image', 'maybe'], /missing-image/],
    ];
    for (const [args, msg] of cases) {
      const r = await cli(args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr.trim().split('\n')[0], args.join(' ')).toMatch(msg);
    }
  });

  it('SIGKILL part-way, then a rerun, gives the same files as an uninterrupted run', async () => {
    const full = join(dir, 'full');
    const killed = join(dir, 'killed');
    const ok = await cli(runArgs(full));
    expect(ok.status, ok.stderr).toBe(0);

    const child = spawn(process.execPath, [BIN, ...runArgs(killed)], { cwd: repoRoot, stdio: 'ignore' });
    // Kill once two segments are complete and the third is under way.
    const deadline = Date.now() + 60_000;
    while (!existsSync(join(killed, 'build-data', 'segment-1.json')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect(existsSync(join(killed, 'reports', 'build-data.json'))).toBe(false);

    const rerun = await cli(runArgs(killed));
    expect(rerun.status, rerun.stderr).toBe(0);
    expect(await diffWorkDirs(full, killed, (f) => f.endsWith('.tmp'))).toEqual([]);
    const report = JSON.parse(await readFile(join(killed, 'reports', 'build-data.json'), 'utf8'));
    expect(report.run.segmentsSkipped).toBeGreaterThanOrEqual(2);
    expect(report).toMatchObject({ in: N_TRAIN + N_VAL + 2, rejected: 2, reconciles: true });
  });

  it('three shards and merge give byte-identical results to one run', async () => {
    const one = join(dir, 'one');
    const sharded = join(dir, 'sharded');
    const cfg = { input: [`${trainTsv}:train`, `${valTsv}:val`], segmentSize: 4, concurrency: 8, quiet: true };
    const single = await buildData({ ...cfg, workDir: one }, { lookup: loopbackOnlyLookup });
    for (const index of [2, 0, 1]) {
      const { report } = await buildData({ ...cfg, workDir: sharded, shard: { index, count: 3 } }, { lookup: loopbackOnlyLookup });
      expect(report.reconciles).toBe(true);
      if (index === 2) await expect(mergeBuildData(sharded)).rejects.toThrow(/segments not complete/);
    }
    const merged = await cli(['merge', '--work-dir', sharded, '--json']);
    expect(merged.status, merged.stderr).toBe(0);
    expect(JSON.parse(merged.stdout)).toMatchObject({ in: single.report.in, written: single.report.written, reconciles: true });
    expect(await diffWorkDirs(one, sharded, (f) => f.includes('.shard-'))).toEqual([]);
  });
});

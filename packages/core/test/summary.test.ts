import { mkdtemp, mkdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatStageTable, readStageReports } from '../src/summary.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'core-summary-'));
  await mkdir(join(dir, 'reports'));
  const put = async (name: string, body: unknown, t: number) => {
    const p = join(dir, 'reports', `${name}.json`);
    await writeFile(p, typeof body === 'string' ? body : JSON.stringify(body));
    await utimes(p, t, t);
  };
  await put('lmdb-writer', { stage: 'lmdb-writer', in: 9, written: 9, rejected: 0, rejectedByReason: {}, reconciles: true, seconds: 2.5 }, 300);
  await put('build-data', { stage: 'build-data', in: 10, written: 9, rejected: 1, rejectedByReason: { x: 1 }, reconciles: true, seconds: 1 }, 100);
  await put('k3m-model-pretrain', { stage: 'k3m-model-pretrain', in: 9, written: 7, rejected: 0, rejectedByReason: {}, skippedByReason: { budget: 1 }, reconciles: false, seconds: 60 }, 400);
  await put('broken', '{not json', 200);
  await put('other', { hello: 1 }, 250);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('readStageReports', () => {
  it('lists every report in the order stages finished, unreadable ones with the reason', async () => {
    const rows = await readStageReports(dir);
    expect(rows.map((r) => r.name)).toEqual(['build-data', 'broken', 'other', 'lmdb-writer', 'k3m-model-pretrain']);
    expect(rows[0]).toMatchObject({ in: 10, written: 9, rejected: 1, skipped: 0, reconciles: true });
    expect(rows[1]!.problem).toMatch(/^not JSON/);
    expect(rows[2]!.problem).toMatch(/^not a stage report/);
    expect(rows[4]).toMatchObject({ skipped: 1, reconciles: false });
    const table = formatStageTable(rows);
    expect(table.split('\n')).toHaveLength(2 + 5);
    expect(table).toMatch(/k3m-model-pretrain\s+9\s+7\s+0\s+1\s+NO\s+60\.0/);
    expect(await readStageReports(join(dir, 'nowhere'))).toEqual([]);
  });
});

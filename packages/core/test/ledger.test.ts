import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ledger } from '../src/ledger.ts';
import { RejectLog } from '../src/rejects.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'core-ledger-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('Ledger', () => {
  it('reconciles only when the three independent counts agree', () => {
    const l = new Ledger();
    l.read(5);
    l.wrote(3);
    l.rejected('field-count');
    expect(l.counts()).toEqual({ in: 5, written: 3, rejected: 1, rejectedByReason: { 'field-count': 1 }, reconciles: false });
    l.rejected('duplicate-id');
    expect(l.counts().reconciles).toBe(true);
    l.wrote();
    expect(l.counts().reconciles).toBe(false);
  });

  it('counts good records left out on purpose as skipped, by reason', () => {
    const l = new Ledger();
    l.read(10);
    l.wrote(7);
    l.rejected('bad');
    l.skipped('step budget reached', 2);
    expect(l.counts()).toEqual({ in: 10, written: 7, rejected: 1, rejectedByReason: { bad: 1 }, skippedByReason: { 'step budget reached': 2 }, reconciles: true });
    l.skipped('step budget reached', 0);
    l.read();
    expect(l.counts().reconciles).toBe(false);
  });

  it('folds in parts (shards) by reason', () => {
    const l = new Ledger();
    l.addCounts({ in: 4, written: 3, rejectedByReason: { a: 1 } });
    l.addCounts({ in: 2, written: 0, rejectedByReason: { a: 1, b: 1 } });
    expect(l.counts()).toEqual({ in: 6, written: 3, rejected: 3, rejectedByReason: { a: 2, b: 1 }, reconciles: true });
  });

  it('is fed by the reject log, which writes one JSON line per reject atomically on commit', async () => {
    const l = new Ledger();
    const log = await RejectLog.open(dir, 'stage-x', l);
    await log.add({ source: 'in.tsv', line: 3, reason: 'bad-utf8' });
    await log.add({ source: 'in.tsv', line: 9, reason: 'bad-utf8', detail: 'byte 0xff' });
    expect(await readdir(join(dir, 'rejects'))).not.toContain('stage-x.jsonl');
    await log.commit();
    const lines = (await readFile(join(dir, 'rejects', 'stage-x.jsonl'), 'utf8')).trim().split('\n').map((t) => JSON.parse(t) as { line: number });
    expect(lines.map((r) => r.line)).toEqual([3, 9]);
    expect(l.counts().rejectedByReason).toEqual({ 'bad-utf8': 2 });
    expect(log.count).toBe(2);
  });
});

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeRecord, RecordReader, TensorpackLmdbWriter, type K3mRecord } from '@k3m-kit/lmdb-writer';
import { resolvePreprocessOptions } from '../src/data/preprocess.ts';
import { lmdbItems, scanLmdb } from '../src/eval/records.ts';
import { splitItems } from '../src/eval/split.ts';
import { makeRecords } from './eval-fixtures.ts';

const dir = mkdtempSync(join(tmpdir(), 'k3m-eval-records-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function writeLmdb(name: string, records: readonly K3mRecord[]): Promise<string> {
  const path = join(dir, name);
  const { writer } = TensorpackLmdbWriter.open(path, 'test');
  for (const r of records) await writer.append(encodeRecord(r));
  await writer.finish();
  return path;
}

describe('scanLmdb and lmdbItems', () => {
  // Items 3, 7 and 10 have 4-wide features where the first record has 8: the model cannot read them.
  const narrow = new Set([3, 7, 10]);
  const records = makeRecords(12).map((r, i) => (narrow.has(i) ? makeRecords(i + 1, 4, 4)[i]! : r));
  let path: string;
  beforeAll(async () => {
    path = await writeLmdb('mixed.lmdb', records);
  });

  it('counts every record read and rejects the unreadable ones by reason', () => {
    const reader = RecordReader.open(path);
    const rejected: Record<string, number> = {};
    const scan = scanLmdb(reader, resolvePreprocessOptions({ featureDim: 8, numClasses: 3 }), rejected);
    expect(scan.read).toBe(records.length);
    expect(scan.usable).toEqual([...records.keys()].filter((i) => !narrow.has(i)));
    expect(rejected).toEqual({ 'feature width 4, expected 8': 3 });
    reader.close();
  });

  it('reads the chosen records by position, their light fields at hand', () => {
    const reader = RecordReader.open(path);
    const items = lmdbItems(reader, [1, 5, 11]);
    expect(items.length).toBe(3);
    expect([0, 1, 2].map((i) => items.info(i))).toEqual([1, 5, 11].map((p) => ({ imageId: records[p]!.imageId, category: records[p]!.category })));
    const r = items.get(1);
    expect([r.imageId, r.caption, r.pv]).toEqual([records[5]!.imageId, records[5]!.caption, records[5]!.pv]);
    expect([...r.features]).toEqual([...records[5]!.features]);
    // Each read is a fresh decode: keeping one record does not pin the others.
    expect(items.get(1)).not.toBe(r);
    expect(() => items.get(3)).toThrow(/item 3 outside \[0, 3\)/);
    reader.close();
  });
});

describe('splitItems', () => {
  const usable = [0, 2, 3, 5, 6, 8, 9, 11, 12, 14];

  it('without a validation LMDB: a seeded 80/20 split of the training positions', () => {
    const s = splitItems(usable, undefined, { seed: 1, maxFit: 0, maxEval: 0 });
    expect(s.fit.positions).toHaveLength(8);
    expect(s.eval.positions).toHaveLength(2);
    expect([...s.fit.positions, ...s.eval.positions].sort((a, b) => a - b)).toEqual(usable);
    expect(s.eval.source).toBe('train');
    expect(s.fit.positions).toEqual([...s.fit.positions].sort((a, b) => a - b));
    expect(splitItems(usable, undefined, { seed: 1, maxFit: 0, maxEval: 0 })).toEqual(s);
    expect(splitItems(usable, undefined, { seed: 2, maxFit: 0, maxEval: 0 }).eval.positions).not.toEqual(s.eval.positions);
  });

  it('with one: fit = training, eval = validation, each capped to a seeded sample in order', () => {
    const s = splitItems(usable, [1, 4, 7], { seed: 1, maxFit: 4, maxEval: 0 });
    expect(s.eval).toEqual({ source: 'validation', positions: [1, 4, 7], of: 3 });
    expect(s.fit.of).toBe(10);
    expect(s.fit.positions).toHaveLength(4);
    expect(s.fit.positions.every((p) => usable.includes(p))).toBe(true);
    expect(s.fit.positions).toEqual([...s.fit.positions].sort((a, b) => a - b));
  });
});

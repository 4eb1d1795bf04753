import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { decodeKeys, KEYS_KEY, LmdbFileReader, LmdbFileWriter, recordKey, TensorpackLmdbReader, TensorpackLmdbWriter } from '../src/index.ts';
import { python, pythonMissing, tempDir } from './helpers.ts';

const value = (i: number) => Buffer.alloc(((i * 37) % 9000) + 1, i % 251);

describe('LMDB file codec', () => {
  test('bulk-loaded trees of depth 1..3 read back in order and by key', () => {
    const dir = tempDir('lmdb-file');
    for (const n of [0, 1, 150, 40_000]) {
      const path = join(dir, `n${n}.lmdb`);
      const w = LmdbFileWriter.create(path);
      for (let i = 0; i < n; i++) {
        w.put(recordKey(i), n > 1000 ? Buffer.alloc(30, i & 255) : value(i));
        if (i % 5000 === 0) w.commit();
      }
      w.commit();
      w.close();
      const r = LmdbFileReader.open(path);
      expect(r.meta.entries).toBe(n);
      let i = 0;
      for (const node of r.nodes()) {
        expect(node.key.toString()).toBe(recordKey(i).toString());
        i++;
      }
      expect(i).toBe(n);
      for (const k of [0, 1, n >> 1, n - 1].filter((x) => x >= 0 && x < n)) {
        expect(r.get(recordKey(k))!.equals(n > 1000 ? Buffer.alloc(30, k & 255) : value(k))).toBe(true);
      }
      expect(r.get(Buffer.from('zzzz'))).toBeUndefined();
      if (n === 40_000) expect(r.meta.depth).toBe(3);
      r.close();
    }
  });

  test('only committed puts survive; resume appends after the last commit', () => {
    const path = join(tempDir('lmdb-commit'), 'x.lmdb');
    const w = LmdbFileWriter.create(path);
    for (let i = 0; i < 50; i++) w.put(recordKey(i), value(i));
    w.commit();
    for (let i = 50; i < 80; i++) w.put(recordKey(i), value(i));
    w.close(); // as if killed: the last 30 were never committed
    expect(LmdbFileReader.open(path).meta.entries).toBe(50);
    const again = LmdbFileWriter.resume(path, () => true);
    expect(again.count).toBe(50);
    for (let i = 50; i < 80; i++) again.put(recordKey(i), value(i));
    again.commit();
    again.close();
    const r = LmdbFileReader.open(path);
    expect(r.meta.entries).toBe(80);
    expect([...r.nodes()].map((n) => Number(n.key.toString()))).toEqual(Array.from({ length: 80 }, (_, i) => i));
    expect(r.get(recordKey(79))!.equals(value(79))).toBe(true);
    r.close();
  });

  test('keys must ascend', () => {
    const w = LmdbFileWriter.create(join(tempDir('lmdb-order'), 'x.lmdb'));
    w.put(recordKey(1), value(1));
    expect(() => w.put(recordKey(1), value(1))).toThrow(/ascend/);
    w.close();
  });

  test('the tensorpack store: progress marker until finish, then __keys__ = entries - 1', () => {
    const final = join(tempDir('tp'), 'training_feat_all.lmdb');
    const { writer } = TensorpackLmdbWriter.open(final, 'fp1');
    for (let i = 0; i < 30; i++) writer.append(value(i));
    writer.commit({ fingerprint: 'fp1', records: 30, lastImageId: '29_s0' });
    writer.abandon();
    const resumed = TensorpackLmdbWriter.open(final, 'fp1');
    expect(resumed.progress?.records).toBe(30);
    expect(resumed.writer.resumedFrom).toBe(30);
    resumed.writer.abandon();
    const fresh = TensorpackLmdbWriter.open(final, 'other inputs');
    expect(fresh.writer.resumedFrom).toBe(0);
    for (let i = 0; i < 3; i++) fresh.writer.append(value(i));
    fresh.writer.finish();
    const r = TensorpackLmdbReader.open(final);
    expect([r.length, r.entries]).toEqual([3, 4]);
    r.close();
    const raw = LmdbFileReader.open(final);
    expect(decodeKeys(raw.get(KEYS_KEY)!)).toEqual(['00000000', '00000001', '00000002']);
    expect([...raw.nodes()].map((n) => n.key.toString())).toEqual(['00000000', '00000001', '00000002', '__keys__']);
    raw.close();
  });

  test.skipIf(pythonMissing() !== undefined)('a file written by Python lmdb (LMDB 0.9) is readable', () => {
    const path = join(tempDir('py-lmdb'), 'p.lmdb');
    const w = python('tensorpack_write.py', [path, '--records', '7', '--feature-dim', '8', '--num-classes', '3']);
    expect(w.status, w.out).toBe(0);
    const r = LmdbFileReader.open(path);
    expect(r.meta.entries).toBe(8);
    expect([...r.nodes()].length).toBe(8);
    r.close();
  });
});

/**
 * Feature rows decoded on worker threads: the LMDBs, the reject log and the counts are
 * identical to decoding on the main thread, and a failing worker surfaces as an error.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { Ledger } from '@k3m-kit/core';
import { convert, lmdbPath, RecordReader } from '../src/index.ts';
import { decodeRow, FeatureRowDecoder, readRawLines } from '../src/feature-rows.ts';
import { featureFiles } from '../src/join.ts';
import type { RecordEncoding } from '../src/codecs/msgpack-numpy.ts';
import { writeFixtureWorkDir } from '../src/testing.ts';
import { baseOptions, tempDir } from './helpers.ts';

async function fixture(name: string): Promise<string> {
  const workDir = tempDir(name);
  await writeFixtureWorkDir({
    workDir,
    featureDim: 64,
    numClasses: 9,
    segments: [
      { seg: 0, split: 'train', items: 60 },
      { seg: 1, split: 'val', items: 12 },
    ],
    editTsv: (split, rows) => (split === 'train' ? [...rows.slice(0, 9), 'x\ty', ...rows.slice(9), rows[4]!] : rows),
  });
  return workDir;
}

describe('decoding on worker threads', () => {
  for (const fp16 of [false, true]) {
    test(`2 workers write the same bytes, rejects and counts as the main thread${fp16 ? ' (fp16)' : ''}`, async () => {
      const serial = await fixture('serial');
      const parallel = await fixture('parallel');
      const a = await convert(baseOptions(serial, { fp16, workers: 0 }));
      const b = await convert(baseOptions(parallel, { fp16, workers: 2, workersAfterMb: 0 }));
      expect([b.in, b.written, b.rejected, b.featureRows]).toEqual([a.in, a.written, a.rejected, a.featureRows]);
      // The bad row, and the extra copy of row 4 (no item of its own: a duplicate-id).
      expect([b.rejected, b.featureRows.rejected]).toEqual([0, 2]);
      for (const split of ['train', 'val'] as const) {
        const x = RecordReader.open(lmdbPath(serial, split));
        const y = RecordReader.open(lmdbPath(parallel, split));
        expect(y.length).toBe(x.length);
        for (let i = 0; i < x.length; i++) expect(y.value(i).equals(x.value(i))).toBe(true);
        x.close();
        y.close();
      }
      const rejects = (w: string) => readFileSync(join(w, 'rejects/lmdb-writer.jsonl'), 'utf8');
      expect(rejects(parallel)).toBe(rejects(serial));
    }, 60_000);
  }

  test('options the join carries that cannot cross to a thread (its ledger, the knowledge stream) stay on the main thread', async () => {
    const workDir = await fixture('clone');
    const rowOptions = { dims: { featureDim: 64, numClasses: 9 }, maxBoxes: 36, encoding: {} };
    // As join() builds it: a Ledger and an async generator next to the row options.
    const knowledge = (async function* () {})();
    const decoder = new FeatureRowDecoder({ ...rowOptions, ledger: new Ledger(), knowledge, workers: 1, workersAfterBytes: 0 } as ConstructorParameters<typeof FeatureRowDecoder>[0]);
    try {
      let n = 0;
      for await (const line of readRawLines(featureFiles(workDir, 'train'))) {
        const want = decodeRow(new Uint8Array(line.bytes), rowOptions);
        expect(await decoder.decode(line)).toEqual(want);
        expect(decoder.threads).toBe(1);
        if (++n === 5) break;
      }
      expect(n).toBe(5);
    } finally {
      await decoder.close();
    }
  }, 30_000);

  test('a worker that fails rejects the rows in flight with its cause instead of hanging', async () => {
    const decoder = new FeatureRowDecoder({
      dims: { featureDim: 4, numClasses: 2 },
      maxBoxes: 36,
      encoding: undefined as unknown as RecordEncoding, // the worker throws on its first row
      workers: 1,
      workersAfterBytes: 0,
    });
    const line = { bytes: new Uint8Array(Buffer.from('0_s0\t1\t1\t0\t\t\t')), line: 1, source: 't.tsv' };
    await expect(decoder.decode(line)).rejects.toThrow(/feature decoding worker 0 failed: .*clsProb/);
    await expect(decoder.decode({ ...line, bytes: new Uint8Array(4) })).rejects.toThrow(/worker 0 failed/);
    await decoder.close();
  }, 30_000);
});

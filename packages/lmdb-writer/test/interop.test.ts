/**
 * Interop with the Python world (Debian python3-lmdb, python3-msgpack, python3-msgpack-numpy):
 * tensorpack 0.9.4's way of reading checks our LMDBs field for field against the sources, and
 * our reader reads what tensorpack's LMDBSerializer.save writes.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { convert, lmdbPath, RecordReader } from '../src/index.ts';
import { realSampleText, writeFixtureWorkDir } from '../src/testing.ts';
import { baseOptions, python, pythonMissing, repoRoot, tempDir } from './helpers.ts';

const missing = pythonMissing();
if (missing) console.warn(`SKIP Python interop: ${missing} (apt-get install python3-lmdb python3-msgpack python3-msgpack-numpy python3-numpy)`);

const sample = await realSampleText(join(repoRoot, '../shared/data/k3m-sample/train.tsv'));

describe.skipIf(missing !== undefined)('Python interop', () => {
  const variants = [
    { name: 'float32, image-missing kept', over: {}, args: [] as string[] },
    { name: 'image-missing dropped', over: { missingImage: 'drop' as const }, args: ['--missing-image', 'drop'] },
    { name: 'fp16 + no-cls-prob', over: { fp16: true, clsProb: false }, args: ['--fp16', '--no-cls-prob'] },
  ];
  for (const v of variants) {
    test(`tensorpack 0.9.4 reads our LMDB and every field matches the TSV (${v.name})`, async () => {
      const workDir = tempDir('py-read');
      await writeFixtureWorkDir({
        workDir,
        featureDim: 2048,
        numClasses: 1601,
        segments: [
          { seg: 0, split: 'train', items: 9 },
          { seg: 1, split: 'val', items: 4 },
        ],
        boxes: (_s, k) => [36, 10, 1, 36, 3][k % 5]!,
      });
      await convert(baseOptions(workDir, v.over));
      for (const split of ['train', 'val'] as const) {
        const r = python('tensorpack_read_check.py', ['--lmdb', lmdbPath(workDir, split), '--work-dir', workDir, '--split', split, ...v.args]);
        expect(r.out).toMatch(/^OK \d+ records/);
        expect(r.status).toBe(0);
      }
    });
  }

  if (!sample) console.warn('SKIP real-sample interop: ../shared/data/k3m-sample/train.tsv not found');
  test.skipIf(!sample)('the 400 real sample items (Chinese titles and knowledge) read back in Python and in our reader', async () => {
    const workDir = tempDir('py-real');
    const items = sample!;
    await writeFixtureWorkDir({
      workDir,
      featureDim: 2048,
      numClasses: 1601,
      segments: [
        { seg: 0, split: 'train', items: items.length - 100 },
        { seg: 1, split: 'val', items: 100 },
      ],
      boxes: () => 2,
      missing: (_s, k) => k % 3 === 0,
      text: (n) => items[n]!,
    });
    const report = await convert(baseOptions(workDir, { batchRecords: 100 }));
    expect([report.in, report.written]).toEqual([items.length, items.length]);
    for (const split of ['train', 'val'] as const) {
      const r = python('tensorpack_read_check.py', ['--lmdb', lmdbPath(workDir, split), '--work-dir', workDir, '--split', split]);
      expect(r.out).toMatch(/^OK \d+ records/);
    }
    const rd = RecordReader.open(lmdbPath(workDir, 'train'));
    expect(rd.get(1).caption).toBe(items[1]!.title);
    expect(rd.get(1).pv).toBe(items[1]!.pv === '' || items[1]!.pv.endsWith(';') ? items[1]!.pv : `${items[1]!.pv};`);
    rd.close();
  });

  test('our reader reads an LMDB written by tensorpack LMDBSerializer.save, field for field', () => {
    const dir = tempDir('py-write');
    const path = join(dir, 'training_feat_all.lmdb');
    const w = python('tensorpack_write.py', [path, '--records', '12']);
    expect(w.status, w.out).toBe(0);
    const expected = readFileSync(`${path}.expected.jsonl`, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const rd = RecordReader.open(path);
    expect(rd.length).toBe(12);
    const f32 = (b64: string) => Array.from(new Float32Array(new Uint8Array(Buffer.from(b64, 'base64')).buffer));
    expected.forEach((e, i) => {
      const r = rd.get(i);
      expect([r.imageId, r.caption, r.pv, r.category, r.numBoxes, r.imageH, r.imageW]).toEqual([e.imageId, e.caption, e.pv, e.category, e.numBoxes, e.imageH, e.imageW]);
      expect([r.numBoxes, r.featureDim]).toEqual(e.featuresShape);
      expect([r.numBoxes, r.numClasses]).toEqual(e.clsProbShape);
      expect(Array.from(r.features)).toEqual(f32(e.features));
      expect(Array.from(r.clsProb)).toEqual(f32(e.clsProb));
      expect(Array.from(r.boxes)).toEqual(f32(e.boxes));
    });
    // The image-missing record (0 boxes) and the NaN caption (empty pandas cell).
    expect(rd.get(2).numBoxes).toBe(0);
    expect(rd.get(4).caption).toBe('');
    rd.close();
  });
});

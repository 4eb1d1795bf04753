/**
 * The report's counts against counts taken independently: the input rows counted straight from
 * the files (segment files and feature TSVs, split into lines here, not through the stage's
 * code), the output read back from the LMDBs, the rejects counted from the reject log. Bad rows
 * of every kind are planted.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { convert, lmdbPath, RecordReader, type ConvertReport } from '../src/index.ts';
import { writeFixtureWorkDir } from '../src/testing.ts';
import { baseOptions, tempDir } from './helpers.ts';

const SEGMENTS = [
  { seg: 0, split: 'train' as const, items: 24 },
  { seg: 1, split: 'val' as const, items: 9 },
  { seg: 2, split: 'train' as const, items: 11 },
];

/** Non-empty lines of a file, as a person would count them. */
const lines = (path: string) => readFileSync(path, 'utf8').split('\n').filter((l) => l.replace(/\r$/, '') !== '');

/** Plants bad feature rows and a repeated item; returns the work dir. */
async function plantedWorkDir(name: string): Promise<string> {
  const workDir = tempDir(name);
  await writeFixtureWorkDir({
    workDir,
    segments: SEGMENTS,
    boxes: (seg, k) => (seg === 2 && k === 4 ? 37 : 1 + (k % 36)), // 37 > maxBoxes 36
    editTsv: (split, rows) => {
      if (split !== 'train') return [...rows, 'not\ta\tfeature\trow'];
      const out = [...rows];
      const f = out[1]!.split('\t');
      out[1] = [f[0], f[1], f[2], String(Number(f[3]) + 1), ...f.slice(4)].join('\t'); // array-length
      const inf = out[5]!.split('\t');
      const boxes = new Float32Array(new Uint8Array(Buffer.from(inf[4]!.slice(2, -1), 'base64')).buffer);
      boxes[1] = -Infinity;
      inf[4] = `b'${Buffer.from(boxes.buffer).toString('base64')}'`;
      out[5] = inf.join('\t'); // inf-value
      out.splice(8, 0, out[8]!); // the same row twice
      out.push(out[0]!.replace(/^0_s0/, '777_s0')); // no such item
      out.push(out[0]!.replace(/^0_s0/, '3_s1')); // a val item's row in the train file
      out.push('', out[2]!.replace(/^\d+_s0/, '3_s0')); // an empty line (not a row), then a row after its (image-missing) item
      return out;
    },
  });
  const seg = join(workDir, 'id_title_pvs_cls.txt2');
  const text = readFileSync(seg, 'utf8').split('\n');
  writeFileSync(seg, [...text.slice(0, 7), text[3], ...text.slice(7)].join('\n')); // item 3_s2 again
  return workDir;
}

/** in / written / rejected as counted from the files, the LMDBs and the reject log. */
function independentCounts(workDir: string, rejectsFile: string, lmdbs: string[]) {
  const manifest = JSON.parse(readFileSync(join(workDir, 'segments.json'), 'utf8')) as { segments: { file: string }[] };
  const itemRows = manifest.segments.reduce((a, s) => a + lines(join(workDir, s.file)).length, 0);
  const featureRows = ['train.tsv.0', 'dev.tsv.0'].reduce((a, f) => a + lines(join(workDir, 'image_features', f)).length, 0);
  let records = 0;
  let withFeatures = 0;
  for (const path of lmdbs) {
    const rd = RecordReader.open(path);
    for (const r of rd) {
      records++;
      // An image-missing record has image_w/image_h "0"; every other record carries a feature row.
      if (r.imageW > 0) withFeatures++;
    }
    rd.close();
  }
  const rejected = lines(rejectsFile).length;
  return { in: itemRows + featureRows, written: records + withFeatures, rejected, records };
}

const counts = (r: ConvertReport) => ({ in: r.in, written: r.written, rejected: r.rejected, records: r.records });

describe('counts', () => {
  test('in, written and rejected equal counts taken from the input files, the LMDBs and the reject log', async () => {
    const workDir = await plantedWorkDir('counts');
    const report = await convert(baseOptions(workDir));
    const truth = independentCounts(workDir, join(workDir, 'rejects/lmdb-writer.jsonl'), [lmdbPath(workDir, 'train'), lmdbPath(workDir, 'val')]);
    expect(counts(report)).toEqual(truth);
    expect(report.reconciles).toBe(true);
    // Nothing was lost: every input row is in a record or in a reject line.
    expect(truth.in).toBe(truth.written + truth.rejected);
    expect(report.rejectedByReason).toEqual({
      'array-length': 1,
      'inf-value': 1,
      'too-many-boxes': 1,
      'feature-row-rejected': 3,
      'duplicate-id': 2,
      'no-metadata': 2,
      'out-of-order': 1,
      'field-count': 1,
    });
  });

  test('three shards together count every row once', async () => {
    const workDir = await plantedWorkDir('counts-shards');
    const parts: ConvertReport[] = [];
    for (let i = 0; i < 3; i++) parts.push(await convert(baseOptions(workDir, { shard: { index: i, count: 3 } })));
    for (const p of parts) expect(p.reconciles).toBe(true);
    const sum = (k: 'in' | 'written' | 'rejected' | 'records') => parts.reduce((a, p) => a + p[k], 0);
    const rejectLines = [0, 1, 2].flatMap((i) => lines(join(workDir, `rejects/lmdb-writer.shard-${i}-of-3.jsonl`)));
    const rejectsFile = join(workDir, 'rejects/all-shards.jsonl');
    writeFileSync(rejectsFile, rejectLines.join('\n') + '\n');
    const lmdbs = [0, 1, 2].flatMap((i) => (['train', 'val'] as const).map((s) => lmdbPath(workDir, s, { index: i, count: 3 })));
    const truth = independentCounts(workDir, rejectsFile, lmdbs);
    expect({ in: sum('in'), written: sum('written'), rejected: sum('rejected'), records: sum('records') }).toEqual(truth);
  });
});

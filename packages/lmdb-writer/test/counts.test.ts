/**
 * The report's counts against counts taken independently, with bad items and bad feature rows of
 * every kind planted: the input counted straight from the files (segment files and feature TSVs,
 * split into lines here, not through the stage's code), the output read back from the LMDBs, the
 * rejects counted from the reject log (each line checked against the input line it names).
 * Items are the top-level ledger (one record or one reject line each); feature rows have their
 * own (`featureRows`). One run, three shards and their merge must give the same counts.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { convert, lmdbPath, merge, RecordReader, type ConvertReport } from '../src/index.ts';
import { writeFixtureWorkDir } from '../src/testing.ts';
import { baseOptions, tempDir } from './helpers.ts';

const SEGMENTS = [
  { seg: 0, split: 'train' as const, items: 24 },
  { seg: 1, split: 'val' as const, items: 9 },
  { seg: 2, split: 'train' as const, items: 11 },
];
const TSVS = { train: 'train.tsv.0', val: 'dev.tsv.0' };

/** Lines of a file, numbered from 1, without the empty ones (as a person would count rows). */
const numbered = (path: string) =>
  readFileSync(path, 'utf8')
    .split('\n')
    .map((text, i) => ({ text: text.replace(/\r$/, ''), line: i + 1 }))
    .filter((l) => l.text !== '');

/** Plants bad feature rows, a repeated item and an item of another segment; returns the work dir. */
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
  const alien = text[5]!.replace(/^5_s2\t/, '5_s0\t'); // segment 0's id in segment 2's file
  writeFileSync(seg, [...text.slice(0, 7), text[3], alien, ...text.slice(7)].join('\n')); // and item 3_s2 again
  return workDir;
}

interface Ledgers {
  in: number;
  written: number;
  rejected: number;
  featureRows: { in: number; written: number; rejected: number };
}

/** The counts as taken from the input files, the LMDBs and the reject lines. */
function independentCounts(workDir: string, rejectLines: string[], lmdbs: string[]): Ledgers {
  const manifest = JSON.parse(readFileSync(join(workDir, 'segments.json'), 'utf8')) as { segments: { file: string }[] };
  const segmentFiles = manifest.segments.map((s) => s.file);
  const tsvFiles = Object.values(TSVS);
  const items = segmentFiles.reduce((a, f) => a + numbered(join(workDir, f)).length, 0);
  const rows = tsvFiles.reduce((a, f) => a + numbered(join(workDir, 'image_features', f)).length, 0);
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
  // Every reject line names its source file, a line of it holding the record, and a reason.
  const rejects = rejectLines.map((l) => JSON.parse(l) as { source: string; line: number; id: string; reason: string });
  const lineOf = (r: (typeof rejects)[number]) => {
    const path = segmentFiles.includes(r.source) ? join(workDir, r.source) : join(workDir, 'image_features', r.source);
    return readFileSync(path, 'utf8').split('\n')[r.line - 1];
  };
  for (const r of rejects) {
    expect(r.reason, JSON.stringify(r)).toMatch(/^[a-z-]+$/);
    expect(segmentFiles.includes(r.source) || tsvFiles.includes(r.source), JSON.stringify(r)).toBe(true);
    expect(lineOf(r)?.split('\t')[0], JSON.stringify(r)).toBe(r.id);
  }
  const itemRejects = rejects.filter((r) => segmentFiles.includes(r.source)).length;
  const rowRejects = rejects.filter((r) => tsvFiles.includes(r.source)).length;
  return { in: items, written: records, rejected: itemRejects, featureRows: { in: rows, written: withFeatures, rejected: rowRejects } };
}

const counts = (r: Pick<ConvertReport, 'in' | 'written' | 'rejected' | 'featureRows'>): Ledgers => ({
  in: r.in,
  written: r.written,
  rejected: r.rejected,
  featureRows: { in: r.featureRows.in, written: r.featureRows.written, rejected: r.featureRows.rejected },
});

const lmdbsOf = (workDir: string, shards: number) =>
  shards === 1
    ? [lmdbPath(workDir, 'train'), lmdbPath(workDir, 'val')]
    : Array.from({ length: shards }, (_, i) => i).flatMap((i) => (['train', 'val'] as const).map((s) => lmdbPath(workDir, s, { index: i, count: shards })));

const ITEM_REASONS = { 'bad-id': 1, 'duplicate-id': 1, 'feature-row-rejected': 3 };
const ROW_REASONS = {
  'array-length': 1,
  'inf-value': 1,
  'too-many-boxes': 1,
  'duplicate-id': 1,
  'no-metadata': 2,
  'out-of-order': 1,
  'field-count': 1,
};

describe('counts', () => {
  test('items and feature rows: in, written and rejected equal counts taken from the input files, the LMDBs and the reject log', async () => {
    const workDir = await plantedWorkDir('counts');
    const report = await convert(baseOptions(workDir));
    const truth = independentCounts(workDir, numbered(join(workDir, 'rejects/lmdb-writer.jsonl')).map((l) => l.text), lmdbsOf(workDir, 1));
    expect(counts(report)).toEqual(truth);
    expect(report.reconciles).toBe(true);
    expect(report.featureRows.reconciles).toBe(true);
    // Nothing was lost: every item and every feature row is in a record or in a reject line.
    expect(truth.in).toBe(truth.written + truth.rejected);
    expect(truth.featureRows.in).toBe(truth.featureRows.written + truth.featureRows.rejected);
    expect(report.rejectedByReason).toEqual(ITEM_REASONS);
    expect(report.featureRows.rejectedByReason).toEqual(ROW_REASONS);
    // One process decodes every row once.
    expect(report.featureRows.decoded).toBe(truth.featureRows.in);
    // The per-split ledgers add up to the run's.
    const splits = Object.values(report.splits);
    expect(splits.reduce((a, s) => a + s.in, 0)).toBe(report.in);
    expect(splits.reduce((a, s) => a + s.featureRows.rejected, 0)).toBe(report.featureRows.rejected);
  });

  test('--missing-image drop: image-missing items are rejected items, the feature rows are unchanged', async () => {
    const workDir = await plantedWorkDir('counts-drop');
    const report = await convert(baseOptions(workDir, { missingImage: 'drop' }));
    const truth = independentCounts(workDir, numbered(join(workDir, 'rejects/lmdb-writer.jsonl')).map((l) => l.text), lmdbsOf(workDir, 1));
    expect(counts(report)).toEqual(truth);
    expect(report.reconciles).toBe(true);
    // The fixture leaves out the image of every item k % 7 == 3: 3 + 1 + 2 in segments 0, 1, 2
    // (the repeated 3_s2 is a duplicate-id).
    expect(report.rejectedByReason['image-missing']).toBe(6);
    expect(truth.written).toBe(truth.featureRows.written);
  });

  test('three shards decode only their own rows, count every item and row once, and the merge reports the single run', async () => {
    const one = await plantedWorkDir('counts-one');
    const single = await convert(baseOptions(one));
    const workDir = await plantedWorkDir('counts-shards');
    const parts: ConvertReport[] = [];
    for (let i = 0; i < 3; i++) parts.push(await convert(baseOptions(workDir, { shard: { index: i, count: 3 } })));
    for (const p of parts) expect([p.reconciles, p.featureRows.reconciles]).toEqual([true, true]);

    // Rows each shard owns, counted from the TSVs: its segments' rows; rows that fit no segment
    // of the file's split are shard 0's.
    const owned = [0, 0, 0];
    for (const [split, file] of Object.entries(TSVS)) {
      const segs = SEGMENTS.filter((s) => s.split === split).map((s) => s.seg);
      for (const { text } of numbered(join(workDir, 'image_features', file))) {
        const m = /^(\d+)_s(\d+)\t/.exec(text);
        const seg = m ? Number(m[2]) : -1;
        owned[segs.includes(seg) ? seg % 3 : 0]!++;
      }
    }
    expect(parts.map((p) => p.featureRows.in)).toEqual(owned);
    expect(parts.map((p) => p.featureRows.decoded)).toEqual(owned);

    const rejectLines = [0, 1, 2].flatMap((i) => numbered(join(workDir, `rejects/lmdb-writer.shard-${i}-of-3.jsonl`)).map((l) => l.text));
    const truth = independentCounts(workDir, rejectLines, lmdbsOf(workDir, 3));
    const sum = (k: 'in' | 'written' | 'rejected') => parts.reduce((a, p) => a + p[k], 0);
    const sumRows = (k: 'in' | 'written' | 'rejected') => parts.reduce((a, p) => a + p.featureRows[k], 0);
    const summed = { in: sum('in'), written: sum('written'), rejected: sum('rejected'), featureRows: { in: sumRows('in'), written: sumRows('written'), rejected: sumRows('rejected') } };
    expect(summed).toEqual(truth);
    expect(summed).toEqual(counts(single));

    const m = await merge({ workDir, numShards: 3, batchRecords: 4, quiet: true });
    const merged = independentCounts(workDir, rejectLines, lmdbsOf(workDir, 1));
    expect(counts(m)).toEqual(merged);
    expect(counts(m)).toEqual(counts(single));
    expect([m.rejectedByReason, m.featureRows.rejectedByReason, m.featureRows.decoded, m.reconciles]).toEqual([ITEM_REASONS, ROW_REASONS, single.featureRows.decoded, true]);
    expect(JSON.parse(readFileSync(join(workDir, 'reports/lmdb-writer.merge.json'), 'utf8'))).toMatchObject({ in: single.in, written: single.written, rejected: single.rejected, reconciles: true });
    // What the shards wrote is what one process wrote: the same reject lines, the same records.
    expect([...rejectLines].sort()).toEqual(numbered(join(one, 'rejects/lmdb-writer.jsonl')).map((l) => l.text).sort());
    for (const split of ['train', 'val'] as const) {
      const a = RecordReader.open(lmdbPath(one, split));
      const b = RecordReader.open(lmdbPath(workDir, split));
      expect(b.length).toBe(a.length);
      for (let i = 0; i < a.length; i++) expect(b.value(i).equals(a.value(i))).toBe(true);
      a.close();
      b.close();
    }
  });

  test('merge refuses a shard report that does not match its part', async () => {
    const workDir = await plantedWorkDir('counts-stale');
    for (let i = 0; i < 3; i++) await convert(baseOptions(workDir, { shard: { index: i, count: 3 } }));
    const path = join(workDir, 'reports/lmdb-writer.shard-2-of-3.json');
    const r = JSON.parse(readFileSync(path, 'utf8')) as ConvertReport;
    const n = r.splits.train!.records;
    r.splits.train!.records = n + 1;
    writeFileSync(path, JSON.stringify(r));
    await expect(merge({ workDir, numShards: 3, batchRecords: 4, quiet: true })).rejects.toThrow(`shard-2-of-3.json: reports ${n + 1} train records, its part holds ${n}`);
  });
});

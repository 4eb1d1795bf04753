import { readFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { encodeKnowledgeLine } from '@k3m-kit/kg-triples';
import { readItems } from '@k3m-kit/raw-ingest';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { convert, lmdbPath, merge, RecordReader, shuffledIndices, type K3mRecord } from '../src/index.ts';
import { writeFixtureWorkDir } from '../src/testing.ts';
import { baseOptions, tempDir } from './helpers.ts';
import type { FeatureRow } from '@k3m-kit/region-features';

function expectRecordMatches(r: K3mRecord, row: FeatureRow | undefined, dims: { featureDim: number; numClasses: number }) {
  if (!row) {
    expect([r.numBoxes, r.imageH, r.imageW, r.features.length, r.clsProb.length, r.boxes.length]).toEqual([0, 0, 0, 0, 0, 0]);
    expect([r.featureDim, r.numClasses]).toEqual([dims.featureDim, dims.numClasses]);
    return;
  }
  expect([r.numBoxes, r.imageH, r.imageW]).toEqual([row.numBoxes, row.imageH, row.imageW]);
  expect(Buffer.from(r.features.buffer, r.features.byteOffset, r.features.byteLength).equals(Buffer.from(row.features.buffer))).toBe(true);
  expect(Buffer.from(r.clsProb.buffer, r.clsProb.byteOffset, r.clsProb.byteLength).equals(Buffer.from(row.clsProb.buffer))).toBe(true);
  expect(Array.from(r.boxes)).toEqual(Array.from(row.boxes));
}

function allRecords(path: string): K3mRecord[] {
  const rd = RecordReader.open(path);
  try {
    return [...rd];
  } finally {
    rd.close();
  }
}

describe('convert', () => {
  test('joins in manifest order; image-missing items keep their place with empty arrays', async () => {
    const workDir = tempDir('join');
    const rows = await writeFixtureWorkDir({ workDir });
    const report = await convert(baseOptions(workDir));
    expect(report.reconciles).toBe(true);
    expect(report.splits.train!.records).toBe(20);
    expect(report.splits.val!.records).toBe(8);
    expect(report.splits.train!.imageMissing).toBe(3);
    expect(report.rejected).toBe(0);
    const recs = allRecords(lmdbPath(workDir, 'train'));
    expect(recs.map((r) => r.imageId)).toEqual(Array.from({ length: 20 }, (_, k) => `${k}_s0`));
    for (const r of recs) expectRecordMatches(r, rows.get(r.imageId), { featureDim: 16, numClasses: 5 });
    expect(recs[0]!.pv).toBe('颜色:红色;材质:棉;');
    expect(recs[1]!.pv).toBe('');
    expect(recs[1]!.caption).toBe('');
    expect(existsSync(`${lmdbPath(workDir, 'train')}-lock`)).toBe(true);
    expect(existsSync(`${lmdbPath(workDir, 'train')}.partial`)).toBe(false);
  });

  test('--missing-image drop leaves image-missing items out and counts them', async () => {
    const workDir = tempDir('drop');
    await writeFixtureWorkDir({ workDir });
    const report = await convert(baseOptions(workDir, { missingImage: 'drop' }));
    expect(report.splits.train!.records).toBe(17);
    expect(report.rejectedByReason['image-missing']).toBe(3 + 1);
    expect(report.reconciles).toBe(true);
  });

  test('bad feature rows go to rejects/lmdb-writer.jsonl with source, line and reason', async () => {
    const workDir = tempDir('rejects');
    await writeFixtureWorkDir({
      workDir,
      editTsv: (split, lines) => {
        if (split !== 'train') return lines;
        const out = [...lines];
        const f = out[1]!.split('\t');
        out[1] = [f[0], f[1], f[2], String(Number(f[3]) + 1), ...f.slice(4)].join('\t'); // array-length
        const nan = out[2]!.split('\t');
        const feats = new Float32Array(new Uint8Array(Buffer.from(nan[5]!.slice(2, -1), 'base64')).buffer);
        feats[0] = NaN;
        nan[5] = `b'${Buffer.from(feats.buffer).toString('base64')}'`;
        out[2] = nan.join('\t');
        out.splice(4, 0, out[4]!.replace(/^(\d+)_s0/, '$1_s0')); // duplicate of the next row
        out.push(out[0]!.replace(/^0_s0/, '999_s0')); // features for no item
        out.push(out[0]!.replace(/^0_s0/, '1_s9')); // unknown segment
        out.push('only\tthree\tfields');
        return out;
      },
    });
    const report = await convert(baseOptions(workDir));
    // A bad row of an item rejects both: the row (its reason) and the item (feature-row-rejected).
    expect(report.rejectedByReason).toEqual({ 'feature-row-rejected': 2 });
    expect(report.featureRows.rejectedByReason).toEqual({ 'array-length': 1, 'duplicate-id': 1, 'field-count': 1, 'nan-value': 1, 'no-metadata': 2 });
    expect([report.reconciles, report.featureRows.reconciles]).toEqual([true, true]);
    const lines = readFileSync(join(workDir, 'rejects/lmdb-writer.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.find((l) => l.reason === 'nan-value')).toMatchObject({ source: 'train.tsv.0', line: 3, id: '2_s0' });
    expect(lines.find((l) => l.id === '2_s0' && l.reason === 'feature-row-rejected')).toMatchObject({ source: 'id_title_pvs_cls.txt0', line: 3 });
    expect(report.splits.train!.records).toBe(18);
  });

  test('a repeated item in the metadata is a duplicate-id reject from its segment file', async () => {
    const workDir = tempDir('dup-item');
    await writeFixtureWorkDir({ workDir });
    const seg = join(workDir, 'id_title_pvs_cls.txt0');
    const text = readFileSync(seg, 'utf8');
    writeFileSync(seg, text + text.split('\n')[2] + '\n');
    const report = await convert(baseOptions(workDir));
    expect(report.rejectedByReason).toEqual({ 'duplicate-id': 1 });
    expect(report.splits.train!.records).toBe(20);
    const lines = readFileSync(join(workDir, 'rejects/lmdb-writer.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toEqual([expect.objectContaining({ source: 'id_title_pvs_cls.txt0', line: 21, id: '2_s0', reason: 'duplicate-id' })]);
  });

  test('--fp16 and --no-cls-prob round trip through our reader', async () => {
    const workDir = tempDir('fp16');
    const rows = await writeFixtureWorkDir({ workDir });
    await convert(baseOptions(workDir, { fp16: true, clsProb: false }));
    const recs = allRecords(lmdbPath(workDir, 'train'));
    for (const r of recs) {
      const row = rows.get(r.imageId);
      expect(r.numClasses).toBe(0);
      expect(r.clsProb.length).toBe(0);
      if (!row) continue;
      expect(Array.from(r.boxes)).toEqual(Array.from(row.boxes));
      for (let i = 0; i < row.features.length; i++) {
        const want = row.features[i]!;
        expect(Math.abs(r.features[i]! - want)).toBeLessThanOrEqual(Math.abs(want) * 2 ** -11 + 2 ** -24);
      }
    }
  });

  test('shards + merge give the records of a single run, byte for byte', async () => {
    const single = tempDir('single');
    const sharded = tempDir('sharded');
    const segments = [
      { seg: 0, split: 'train' as const, items: 9 },
      { seg: 1, split: 'val' as const, items: 5 },
      { seg: 2, split: 'train' as const, items: 6 },
      { seg: 3, split: 'train' as const, items: 4 },
      { seg: 4, split: 'val' as const, items: 3 },
    ];
    await writeFixtureWorkDir({ workDir: single, segments });
    await writeFixtureWorkDir({ workDir: sharded, segments });
    await convert(baseOptions(single));
    for (let i = 0; i < 3; i++) {
      const r = await convert(baseOptions(sharded, { shard: { index: i, count: 3 } }));
      expect(r.reconciles).toBe(true);
      expect(existsSync(join(sharded, `image_lmdb_json/training_feat_part_${i}.lmdb`))).toBe(true);
    }
    const m = await merge({ workDir: sharded, batchRecords: 4, quiet: true });
    expect(m.numShards).toBe(3);
    const records = (paths: string[]) => paths.reduce((a, p) => a + allRecords(p).length, 0);
    const parts = [0, 1, 2].flatMap((i) => (['train', 'val'] as const).map((s) => lmdbPath(sharded, s, { index: i, count: 3 })));
    expect([m.in, m.written, m.rejected, m.reconciles]).toEqual([records(parts), records([lmdbPath(sharded, 'train'), lmdbPath(sharded, 'val')]), 0, true]);
    for (const split of ['train', 'val'] as const) {
      const a = RecordReader.open(lmdbPath(single, split));
      const b = RecordReader.open(lmdbPath(sharded, split));
      expect(b.length).toBe(a.length);
      for (let i = 0; i < a.length; i++) expect(b.value(i).equals(a.value(i))).toBe(true);
      a.close();
      b.close();
    }
  });

  test('knowledge comes from kg-triples kg/knowledge.tsv when it exists, in lockstep with the items', async () => {
    const workDir = tempDir('kg');
    const segments = [
      { seg: 0, split: 'train' as const, items: 6 },
      { seg: 1, split: 'val' as const, items: 3 },
      { seg: 2, split: 'train' as const, items: 4 },
    ];
    await writeFixtureWorkDir({ workDir, segments });
    const lines: string[] = [];
    for await (const it of readItems(workDir)) lines.push(encodeKnowledgeLine({ imageId: it.imageId, split: it.split, itemId: it.itemId, pv: Number(it.imageId.split('_')[0]) % 2 ? '' : `品牌:牌${it.imageId};` }));
    mkdirSync(join(workDir, 'kg'), { recursive: true });
    writeFileSync(join(workDir, 'kg/knowledge.tsv'), lines.join('\n') + '\n');
    const report = await convert(baseOptions(workDir));
    expect(report.knowledge).toMatch(/kg-triples/);
    const recs = allRecords(lmdbPath(workDir, 'train'));
    expect(recs.map((r) => r.pv)).toEqual(['品牌:牌0_s0;', '', '品牌:牌2_s0;', '', '品牌:牌4_s0;', '', '品牌:牌0_s2;', '', '品牌:牌2_s2;', '']);
    // A shard walks past the knowledge of segments it does not own.
    const shard1 = await convert(baseOptions(workDir, { shard: { index: 1, count: 2 } }));
    expect(shard1.splits.val!.records).toBe(3);
    // Out of step (a stale kg/): an error naming kg-triples, not silently wrong text.
    writeFileSync(join(workDir, 'kg/knowledge.tsv'), lines.filter((_, i) => i !== 2).join('\n') + '\n');
    await expect(convert(baseOptions(workDir))).rejects.toThrow(/kg-triples build/);
  });

  test('a finished split is skipped on rerun; the report still reconciles', async () => {
    const workDir = tempDir('rerun');
    await writeFixtureWorkDir({ workDir });
    const first = await convert(baseOptions(workDir));
    const again = await convert(baseOptions(workDir));
    expect(again.splits.train!.skipped).toBe(true);
    expect([again.written, again.in, again.featureRows]).toEqual([28, first.in, first.featureRows]);
    expect(again.reconciles).toBe(true);
  });
});

describe('reader', () => {
  test('random access, zero-copy views and a seeded bounded shuffle', async () => {
    const workDir = tempDir('reader');
    await writeFixtureWorkDir({ workDir, featureDim: 2048, numClasses: 1601, segments: [{ seg: 0, split: 'train', items: 12 }], boxes: () => 36, missing: () => false });
    await convert(baseOptions(workDir, { splits: ['train'] }));
    const rd = RecordReader.open(lmdbPath(workDir, 'train'));
    const r = rd.get(5);
    expect(r.imageId).toBe('5_s0');
    // A view into the value buffer, not a copy.
    expect(r.features.buffer.byteLength).toBeGreaterThan(r.features.byteLength);
    expect(r.features.byteOffset % 4).toBe(0);
    const t = rd.getTransient(5);
    expect(Buffer.from(t.features.buffer, t.features.byteOffset, t.features.byteLength).equals(Buffer.from(r.features.buffer, r.features.byteOffset, r.features.byteLength))).toBe(true);
    expect(t.imageId).toBe('5_s0');
    const order = [...shuffledIndices(rd.length, { bufferSize: 4, seed: 3 })];
    expect([...order].sort((a, b) => a - b)).toEqual(Array.from({ length: 12 }, (_, i) => i));
    expect(order).toEqual([...shuffledIndices(rd.length, { bufferSize: 4, seed: 3 })]);
    expect(order).not.toEqual(Array.from({ length: 12 }, (_, i) => i));
    // With a buffer of 4, index i can come out no earlier than position i - 3.
    order.forEach((idx, pos) => expect(pos).toBeGreaterThanOrEqual(idx - 3));
    const endless = shuffledIndices(rd.length, { bufferSize: 4, seed: 3, repeat: true });
    const first30 = Array.from({ length: 30 }, () => endless.next().value);
    expect(first30.every((i) => typeof i === 'number' && i >= 0 && i < 12)).toBe(true);
    expect([...rd.shuffled({ bufferSize: 4, seed: 3 })].map((x) => x.imageId)).toEqual(order.map((i) => `${i}_s0`));
    rd.close();
  });
});

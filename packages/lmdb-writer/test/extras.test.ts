/**
 * Extra fields of non-K3M inputs (raw-ingest's item_extra sidecar) in the LMDB records: they ride
 * in the boxes map under keys msgpack_numpy ignores. Our reader reads them back; records without
 * them keep their bytes; and the original K3M loader (shared/reference/k3m-torch, run with
 * Debian's Python) still unpacks every record into its 10 fields.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeItemExtra, encodeManifest, itemExtraFileName, readItems, readManifest, type ItemExtra } from '@k3m-kit/raw-ingest';
import { convert, decodeRecord, encodeRecord, lmdbPath, RecordReader, type K3mRecord } from '../src/index.ts';
import { writeFixtureWorkDir } from '../src/testing.ts';
import { baseOptions, PYTHON, pkgRoot, pythonMissing, repoRoot, tempDir } from './helpers.ts';

const K3M_TORCH = resolve(process.env.K3M_SHARED ?? resolve(repoRoot, '../shared'), 'reference/k3m-torch');

/** A full-size record (36 boxes, 2048-d features, 1601 classes), as the trainer reads them. */
const record = (extra?: ItemExtra): K3mRecord => ({
  features: new Float32Array(36 * 2048).fill(0.5),
  clsProb: new Float32Array(36 * 1601).fill(0.25),
  boxes: Float32Array.from({ length: 36 * 4 }, (_, i) => i),
  numBoxes: 36,
  imageH: 100,
  imageW: 120,
  imageId: '0_s0',
  caption: '保温杯',
  pv: '',
  category: '家居用品',
  featureDim: 2048,
  numClasses: 1601,
  ...(extra ? { extra } : {}),
});

/** What sidecar each item of the fixture gets, by running number. */
const EXTRAS: ItemExtra[] = [{ domain: '家居用品' }, { instanceLabels: ['AHC 黄金水', 'AHC 黄金眼霜'] }, { captionSource: 'g' }, { instanceLabels: [] }];

describe('extra fields in LMDB records', () => {
  it('round-trip through our codec, leave K3M records byte for byte as before, and keep the arrays aligned', () => {
    const plain = encodeRecord(record());
    expect(encodeRecord({ ...record(), extra: {} })).toEqual(plain);
    expect(decodeRecord(plain).zeroCopy).toBe(true);
    expect('extra' in decodeRecord(plain).record).toBe(false);
    for (const extra of EXTRAS) {
      const { record: back, zeroCopy } = decodeRecord(encodeRecord(record(extra)));
      expect(back.extra).toEqual(extra);
      expect(zeroCopy).toBe(true);
      expect([...back.boxes]).toEqual([...record().boxes]);
    }
  });

  const missing = pythonMissing() ?? (existsSync(K3M_TORCH) ? undefined : `${K3M_TORCH} not found`);
  if (missing) console.warn(`SKIP original-loader check: ${missing}`);
  it.skipIf(missing !== undefined)('convert carries the sidecar into every record, and the original K3M loader unpacks them all', async () => {
    const workDir = tempDir('extras');
    await writeFixtureWorkDir({ workDir, featureDim: 2048, numClasses: 1601, segments: [{ seg: 0, split: 'train', items: 5 }, { seg: 1, split: 'train', items: 3 }], missing: () => false });
    // Give the fixture the sidecars raw-ingest writes for P9D / Product1M / TaiSu input.
    const manifest = await readManifest(workDir);
    let n = 0;
    for (const e of manifest.segments) {
      const lines: string[] = [];
      for await (const row of readItems(workDir, undefined, (x) => x.seg === e.seg)) lines.push(encodeItemExtra(row.imageId, EXTRAS[n++ % EXTRAS.length]!));
      await writeFile(join(workDir, itemExtraFileName(e.seg)), lines.join('\n') + '\n');
    }
    await writeFile(join(workDir, 'segments.json'), encodeManifest({ ...manifest, segments: manifest.segments.map((e) => ({ ...e, extra: itemExtraFileName(e.seg) })) }));

    const report = await convert(baseOptions(workDir, { splits: ['train'] }));
    expect(report.splits.train!.records).toBe(8);
    const reader = RecordReader.open(lmdbPath(workDir, 'train'));
    const ours = [...reader].map((r) => r.extra);
    reader.close();
    const expected = Array.from({ length: 8 }, (_, i) => EXTRAS[i % EXTRAS.length]);
    expect(ours).toEqual(expected);

    const r = spawnSync(PYTHON, [join(pkgRoot, 'scripts', 'original_loader_check.py'), '--lmdb', lmdbPath(workDir, 'train'), '--k3m-torch', K3M_TORCH], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { records: number; preprocessed: number; failures: string[]; extras: ItemExtra[] };
    expect(out).toMatchObject({ records: 8, preprocessed: 8, failures: [] });
    expect(out.extras).toEqual(expected);
  }, 120_000);
});

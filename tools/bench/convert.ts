/**
 * @file Benchmark of lmdb-writer (not a test). Prints figures and ratios:
 *
 * 1. encode + write: N records of 36x2048 + 36x1601 float32 (+ boxes) through the msgpack-numpy
 *    codec into a tensorpack-layout LMDB (records/s, MB/s), next to a dd-style sequential write
 *    of the same bytes on the same disk (the physical limit);
 * 2. random reads through the trainer's reader (records/s, decoded, warm page cache), with
 *    `get` (a fresh buffer per record) and `getTransient` (one reused buffer);
 * 3. convert from a region-feature TSV (the whole stage: TSV parse, base64, join, encode,
 *    write) next to a Python reference doing what the original script does with Debian's
 *    lmdb/msgpack/msgpack_numpy (skipped when they are missing).
 *
 *   npx tsx tools/bench/convert.ts                 # N=1000 encode+write, 300 TSV rows
 *   BENCH_N=4000 BENCH_TSV=1000 BENCH_DIR=/data npx tsx tools/bench/convert.ts
 */
import { spawnSync } from 'node:child_process';
import { closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rng, WHOLE } from '@k3m-kit/core';
import { convert, encodeRecord, lmdbPath, MsgpackWriter, RecordReader, TensorpackLmdbWriter, type K3mRecord } from '@k3m-kit/lmdb-writer';
import { writeFixtureWorkDir } from '@k3m-kit/lmdb-writer/testing';
import { featureTsvPath } from '@k3m-kit/region-features';

const N = Number(process.env.BENCH_N ?? 1000);
const TSV_ROWS = Number(process.env.BENCH_TSV ?? 300);
const READS = Number(process.env.BENCH_READS ?? 5000);
const dir = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'bench-lmdb-'));
const here = dirname(fileURLToPath(import.meta.url));
const fmt = (x: number, d = 1) => x.toFixed(d);

function record(i: number, pool: Float32Array[]): K3mRecord {
  // A few distinct arrays reused: generating 3 M random floats per record would dominate.
  const p = pool[i % pool.length]!;
  return {
    features: p.subarray(0, 36 * 2048),
    clsProb: p.subarray(36 * 2048, 36 * (2048 + 1601)),
    boxes: p.subarray(36 * (2048 + 1601), 36 * (2048 + 1601 + 4)),
    numBoxes: 36,
    imageH: 480,
    imageW: 640,
    imageId: `${i}_s0`,
    caption: '夏季新款纯棉短袖T恤',
    pv: '颜色:红色;材质:棉;',
    category: 'cat',
    featureDim: 2048,
    numClasses: 1601,
  };
}

const rng = new Rng(1);
const pool = Array.from({ length: 8 }, () => Float32Array.from({ length: 36 * (2048 + 1601 + 4) }, () => rng.next()));

// 1. encode + write
const path = join(dir, 'bench_feat_all.lmdb');
let t = performance.now();
const { writer } = TensorpackLmdbWriter.open(path, 'bench');
const w = new MsgpackWriter(1 << 21);
let valueBytes = 0;
for (let i = 0; i < N; i++) {
  const v = encodeRecord(record(i, pool), {}, w);
  valueBytes += v.length;
  writer.append(v);
  if ((i + 1) % 1000 === 0) writer.commit({ fingerprint: 'bench', records: writer.count, lastImageId: `${i}_s0` });
}
writer.finish();
const writeS = (performance.now() - t) / 1000;
const fileBytes = statSync(path).size;

// dd-style: the same number of bytes in 8 MB writes, then fdatasync.
const ddPath = join(dir, 'dd.bin');
const chunk = Buffer.alloc(8 << 20, 7);
t = performance.now();
const fd = openSync(ddPath, 'w');
for (let left = fileBytes; left > 0; left -= chunk.length) writeSync(fd, chunk, 0, Math.min(left, chunk.length));
fdatasyncSync(fd);
closeSync(fd);
const ddS = (performance.now() - t) / 1000;
rmSync(ddPath);

// 2. random reads
const rd = RecordReader.open(path);
const pickRng = new Rng(2);
for (let i = 0; i < Math.min(N, 200); i++) rd.get(i); // warm up
t = performance.now();
let sink = 0;
for (let i = 0; i < READS; i++) sink += rd.get(pickRng.int(rd.length)).features[0]!;
const readS = (performance.now() - t) / 1000;
t = performance.now();
for (let i = 0; i < READS; i++) sink += rd.getTransient(pickRng.int(rd.length)).features[0]!;
const transientS = (performance.now() - t) / 1000;
rd.close();

console.log(`encode+write  ${N} records, ${fmt(valueBytes / 1e6)} MB of values, file ${fmt(fileBytes / 1e6)} MB (+${fmt((fileBytes / valueBytes - 1) * 100, 2)}%)`);
console.log(`              ${fmt(N / writeS, 0)} records/s, ${fmt(valueBytes / 1e6 / writeS)} MB/s`);
console.log(`dd-style      ${fmt(fileBytes / 1e6 / ddS)} MB/s sequential write of the same bytes; ratio ${fmt(fileBytes / writeS / (fileBytes / ddS), 2)}`);
console.log(`random read   ${READS} reads, ${fmt(READS / readS, 0)} records/s decoded with get (fresh buffers), ${fmt(READS / transientS, 0)} records/s with getTransient (${sink > 0 ? 'ok' : '?'})`);
rmSync(path);

// 3. convert from TSV vs the Python reference
const workDir = join(dir, 'work');
await writeFixtureWorkDir({
  workDir,
  featureDim: 2048,
  numClasses: 1601,
  segments: [{ seg: 0, split: 'train', items: TSV_ROWS }],
  boxes: () => 36,
  missing: () => false,
});
const tsvBytes = statSync(featureTsvPath(workDir, 'train', 0)).size;
const report = await convert({ workDir, splits: ['train'], shard: WHOLE, missingImage: 'keep', fp16: false, clsProb: true, batchRecords: 1000, batchMb: 256, verifySample: 8, quiet: true });
const convS = report.seconds;
console.log(`convert       ${TSV_ROWS} TSV rows (${fmt(tsvBytes / 1e6)} MB TSV): ${fmt(TSV_ROWS / convS, 0)} records/s, ${fmt(report.valueBytes / 1e6 / convS)} MB/s of values, ${fmt(tsvBytes / 1e6 / convS)} MB/s of TSV`);
rmSync(lmdbPath(workDir, 'train'));
const py = spawnSync('/usr/bin/python3', [resolve(here, '../../packages/lmdb-writer/scripts/reference_convert.py'), featureTsvPath(workDir, 'train', 0), join(dir, 'py.lmdb')], { encoding: 'utf8' });
if (py.status === 0) {
  const pyS = Number(py.stdout.trim().split(' ')[1]);
  console.log(`python ref    ${fmt(TSV_ROWS / pyS, 0)} records/s, ${fmt(tsvBytes / 1e6 / pyS)} MB/s of TSV; ours / python = ${fmt(pyS / convS, 2)}x`);
} else console.log(`python ref    skipped: ${(py.stdout + py.stderr).trim().split('\n').pop()}`);
console.log(`(convert / dd = ${fmt(report.valueBytes / convS / (fileBytes / ddS), 2)})`);
rmSync(dir, { recursive: true, force: true });

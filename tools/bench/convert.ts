/**
 * @file Benchmark of lmdb-writer (not a test). One run prints, each with the peak RSS of the
 * process that did it (every measured part runs in its own child process):
 *
 * 1. convert from region-feature TSVs (the whole stage: read, base64, checks, join, msgpack,
 *    LMDB commits, read-back check) of K3M-shaped rows (36 boxes, 2048 + 1601 floats, values
 *    drawn like a detector's: the fixture's `values: 'detector'`), in
 *    records/s, next to a dd-style write of the same bytes (8 MB writes + fdatasync): the
 *    goal is convert / dd >= 0.9 with float32;
 * 2. the same with --fp16: the goal is fp16 records/s >= 1.8x the float32 records/s;
 *    each convert runs with the glibc malloc settings the LMDB writer sets (core's
 *    `keepFreedMemory`); one more fp32 convert per round runs with glibc's defaults
 *    (`K3M_MALLOPT=off`), to show what the settings bring;
 * 3. convert with the decoding on the main thread only (--workers 0), to show what the
 *    worker threads bring;
 * 4. the trainer's random reads through `RecordReader` (`get`: fresh buffers, `getTransient`:
 *    one reused buffer), warm page cache;
 * 5. the Python reference (the original step 3 with Debian's lmdb/msgpack/msgpack_numpy),
 *    skipped with its reason when they are missing;
 * 6. one convert shard of four (`--shard 0/4`; the rows are in 4 segments): it decodes only its
 *    own quarter of the rows and passes over the rest, so its time and CPU should be near a
 *    quarter of the whole run's.
 *
 * Parts 1 and 2 and the dd-style write run `BENCH_REPEAT` times (default 3), interleaved, each
 * after a `sync` (so no part pays for the write-back of the one before); medians are compared,
 * every run's figure printed: on this machine's virtual disk one dd-style write may take 3x
 * another.
 *
 *   npx tsx tools/bench/convert.ts                       # 400 rows (~280 MB TSV)
 *   BENCH_TSV=1000 BENCH_READS=5000 BENCH_REPEAT=5 BENCH_DIR=/data npx tsx tools/bench/convert.ts
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MALLOPT_ENV, Rng, WHOLE, type Shard } from '@k3m-kit/core';
import { convert, defaultWorkers, lmdbPath, RecordReader } from '@k3m-kit/lmdb-writer';
import { writeFixtureWorkDir } from '@k3m-kit/lmdb-writer/testing';
import { featureTsvPath } from '@k3m-kit/region-features/feature-tsv';

const self = fileURLToPath(import.meta.url);
const here = dirname(self);
/**
 * Peak RSS of this process in MB: VmHWM of its own address space. (getrusage's maxRSS is no use
 * in a child: Linux carries the parent's high-water mark across fork and exec.)
 */
function peakMb(): number {
  const hwm = existsSync('/proc/self/status') ? /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8')) : null;
  return hwm ? Number(hwm[1]) / 1024 : process.resourceUsage().maxRSS / 1024;
}

/** What a child process measured. */
interface Part {
  seconds: number;
  peakMb: number;
  /** CPU seconds of the whole process, worker threads included. */
  cpuSeconds?: number;
  records?: number;
  /** Feature rows the convert decoded. */
  decoded?: number;
  fileBytes?: number;
  valueBytes?: number;
  getPerS?: number;
  transientPerS?: number;
  /** The convert report's glibc malloc settings. */
  malloc?: string;
}

/** The measured parts, each run in a child process of this file (`<file> part <name> <json>`). */
const PARTS = {
  async convert(a: { workDir: string; fp16: boolean; workers: number; shard?: Shard }): Promise<Part> {
    const shard = a.shard ?? WHOLE;
    const t = performance.now();
    const c0 = process.cpuUsage();
    const r = await convert({ workDir: a.workDir, splits: ['train'], shard, missingImage: 'keep', fp16: a.fp16, clsProb: true, batchRecords: 1000, batchMb: 256, verifySample: 8, quiet: true, workers: a.workers });
    const seconds = (performance.now() - t) / 1000;
    const cpu = process.cpuUsage(c0);
    const file = lmdbPath(a.workDir, 'train', shard);
    return { seconds, peakMb: peakMb(), cpuSeconds: (cpu.user + cpu.system) / 1e6, records: r.written, decoded: r.featureRows.decoded, fileBytes: statSync(file).size, valueBytes: r.valueBytes, malloc: r.malloc };
  },
  async reads(a: { path: string; reads: number }): Promise<Part> {
    const rd = RecordReader.open(a.path);
    const pick = new Rng(2);
    for (let i = 0; i < Math.min(rd.length, 200); i++) rd.get(i); // warm up
    let sink = 0;
    let t = performance.now();
    for (let i = 0; i < a.reads; i++) sink += rd.get(pick.int(rd.length)).features[0]!;
    const getS = (performance.now() - t) / 1000;
    t = performance.now();
    for (let i = 0; i < a.reads; i++) sink += rd.getTransient(pick.int(rd.length)).features[0]!;
    const transientS = (performance.now() - t) / 1000;
    rd.close();
    if (!(sink > 0)) throw new Error('reads returned nothing');
    return { seconds: getS + transientS, peakMb: peakMb(), getPerS: a.reads / getS, transientPerS: a.reads / transientS };
  },
} as const;

/**
 * The dd-style write in a bare Node process (no modules loaded, so its peak RSS is dd's, not
 * this benchmark's): 8 MB writes, then fdatasync.
 */
function ddWrite(path: string, bytes: number): Part {
  settle();
  const code = `
    import { closeSync, existsSync, fdatasyncSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
    const peakMb = ${peakMb.toString()};
    const chunk = Buffer.alloc(8 << 20, 7);
    const t = performance.now();
    const fd = openSync(${JSON.stringify(path)}, 'w');
    for (let left = ${bytes}; left > 0; left -= chunk.length) writeSync(fd, chunk, 0, Math.min(left, chunk.length));
    fdatasyncSync(fd);
    closeSync(fd);
    const seconds = (performance.now() - t) / 1000;
    rmSync(${JSON.stringify(path)});
    console.log(JSON.stringify({ seconds, peakMb: peakMb() }));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`dd-style write failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Part;
}

/**
 * Flushes every dirty page first (`sync`), so that each measured part starts with the disk idle:
 * otherwise the fixture's 280 MB of TSV, or the part before, is still being written back while
 * the next part runs and fsyncs, and the order of the parts decides the figures.
 */
function settle(): void {
  spawnSync('sync');
}

/** Runs a part in a child process; `glibcDefaults` keeps the writer from changing glibc's malloc settings. */
function child(name: keyof typeof PARTS, args: object, glibcDefaults = false): Part {
  settle();
  const { [MALLOPT_ENV]: _, ...rest } = process.env;
  const env = glibcDefaults ? { ...rest, [MALLOPT_ENV]: 'off' } : rest;
  const r = spawnSync(process.execPath, ['--import', 'tsx', self, 'part', name, JSON.stringify(args)], { encoding: 'utf8', maxBuffer: 1 << 24, env });
  if (r.status !== 0) throw new Error(`bench part ${name} failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Part;
}

async function main(): Promise<void> {
  const rows = Number(process.env.BENCH_TSV ?? 400);
  const reads = Number(process.env.BENCH_READS ?? 3000);
  const dir = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'bench-convert-'));
  const fmt = (x: number, d = 1) => x.toFixed(d);
  try {
    const workDir = join(dir, 'work');
    // Four segments, so that one shard of four has a quarter of the rows (part 6).
    const segments = [0, 1, 2, 3].map((seg) => ({ seg, split: 'train' as const, items: Math.floor(rows / 4) + (seg < rows % 4 ? 1 : 0) }));
    await writeFixtureWorkDir({ workDir, featureDim: 2048, numClasses: 1601, segments, boxes: () => 36, missing: () => false, values: 'detector' });
    const tsv = featureTsvPath(workDir, 'train', 0);
    const tsvMb = statSync(tsv).size / 1e6;
    const cores = availableParallelism();
    const workers = defaultWorkers();
    console.log(`lmdb-writer convert: ${rows} K3M-shaped rows (36 boxes, 2048 + 1601 floats; detector-like values: half the features 0, cls_prob softmax rows), ${fmt(tsvMb)} MB of TSV, ${cores} cores; load average ${loadavg().map((l) => fmt(l, 2)).join(' ')} (a shared machine slows every figure)`);

    const repeat = Math.max(1, Number(process.env.BENCH_REPEAT ?? 3));
    const lmdb = lmdbPath(workDir, 'train');
    const runs: { fp32: Part; dd: Part; fp16: Part; plain: Part }[] = [];
    let reading: Part | undefined;
    for (let i = 0; i < repeat; i++) {
      const fp32 = child('convert', { workDir, fp16: false, workers });
      reading ??= child('reads', { path: lmdb, reads });
      rmSync(lmdb);
      const dd = ddWrite(join(dir, 'dd.bin'), fp32.fileBytes!);
      const fp16 = child('convert', { workDir, fp16: true, workers });
      rmSync(lmdb);
      const plain = child('convert', { workDir, fp16: false, workers }, true);
      rmSync(lmdb);
      runs.push({ fp32, dd, fp16, plain });
    }
    // The run with the median convert time stands for each kind.
    const median = (kind: 'fp32' | 'dd' | 'fp16' | 'plain') => [...runs].sort((a, b) => a[kind].seconds - b[kind].seconds)[Math.floor(runs.length / 2)]![kind];
    const all = (kind: 'fp32' | 'dd' | 'fp16' | 'plain', f: (p: Part) => string) => runs.map((r) => f(r[kind])).join(' / ');
    const fp32 = median('fp32');
    const dd = median('dd');
    const fp16 = median('fp16');
    const plain = median('plain');
    // The other choice than the default: decoding threads where the default has none, and none where it has some.
    const other = workers === 0 ? Math.max(1, cores - 1) : 0;
    const serial = child('convert', { workDir, fp16: false, workers: other });
    rmSync(lmdb);
    const quarter = { index: 0, count: 4 };
    const shard = child('convert', { workDir, fp16: false, workers, shard: quarter });
    rmSync(lmdbPath(workDir, 'train', quarter));

    const perS = (p: Part) => p.records! / p.seconds;
    const cpuMs = (p: Part) => `${fmt((p.cpuSeconds! * 1000) / p.records!)} ms CPU/record`;
    const ddMbS = fp32.fileBytes! / 1e6 / dd.seconds;
    const ratio = dd.seconds / fp32.seconds;
    console.log(`${repeat} runs of each, interleaved; medians:`);
    console.log(`convert fp32      ${fmt(perS(fp32), 0)} records/s (runs: ${all('fp32', (p) => fmt(perS(p), 0))}), ${fmt(fp32.fileBytes! / 1e6 / fp32.seconds)} MB/s of LMDB (${fmt(fp32.fileBytes! / 1e6)} MB, +${fmt((fp32.fileBytes! / fp32.valueBytes! - 1) * 100, 2)}% over the values), ${workers} decoding worker(s) (the default), ${cpuMs(fp32)}; peak RSS ${fmt(fp32.peakMb, 0)} MB`);
    console.log(`dd-style write    ${fmt(ddMbS)} MB/s (runs: ${all('dd', (p) => fmt(fp32.fileBytes! / 1e6 / p.seconds, 0))}), the same ${fmt(fp32.fileBytes! / 1e6)} MB + fdatasync; peak RSS ${fmt(dd.peakMb, 0)} MB`);
    console.log(`  convert / dd    ${fmt(ratio, 2)} of the medians (goal >= 0.90: ${ratio >= 0.9 ? 'met' : 'MISSED'}); run by run: ${runs.map((r) => fmt(r.dd.seconds / r.fp32.seconds, 2)).join(' / ')}`);
    console.log(`convert fp16      ${fmt(perS(fp16), 0)} records/s (runs: ${all('fp16', (p) => fmt(perS(p), 0))}; ${fmt(fp16.fileBytes! / 1e6)} MB of LMDB), ${cpuMs(fp16)}; peak RSS ${fmt(fp16.peakMb, 0)} MB`);
    const fp16Ratio = perS(fp16) / perS(fp32);
    console.log(`  fp16 / fp32     ${fmt(fp16Ratio, 2)}x records/s of the medians (goal >= 1.80: ${fp16Ratio >= 1.8 ? 'met' : 'MISSED'}); run by run: ${runs.map((r) => fmt(perS(r.fp16) / perS(r.fp32), 2)).join(' / ')}`);
    console.log(`convert fp32, ${plain.malloc}  ${fmt(perS(plain), 0)} records/s (runs: ${all('plain', (p) => fmt(perS(p), 0))}), ${cpuMs(plain)}; peak RSS ${fmt(plain.peakMb, 0)} MB; with the writer's settings (above: ${fp32.malloc}) / this: ${fmt(perS(fp32) / perS(plain), 2)}x of the medians; run by run: ${runs.map((r) => fmt(perS(r.fp32) / perS(r.plain), 2)).join(' / ')}`);
    console.log(`convert fp32, --workers ${other}  ${fmt(perS(serial), 0)} records/s, ${cpuMs(serial)}; peak RSS ${fmt(serial.peakMb, 0)} MB; the default (${workers}) / this: ${fmt(perS(fp32) / perS(serial), 2)}x`);
    console.log(`random reads      ${reads} reads: ${fmt(reading!.getPerS!, 0)} records/s decoded with get, ${fmt(reading!.transientPerS!, 0)} records/s with getTransient; peak RSS ${fmt(reading!.peakMb, 0)} MB`);

    const py = spawnSync('/usr/bin/python3', [resolve(here, '../../packages/lmdb-writer/scripts/reference_convert.py'), tsv, join(dir, 'py.lmdb')], { encoding: 'utf8' });
    if (py.status === 0) {
      const [, s, rss] = py.stdout.trim().split(' ').map(Number) as [number, number, number];
      console.log(`python reference  ${fmt(rows / s, 0)} records/s; peak RSS ${fmt(rss, 0)} MB; ours (fp32) / python = ${fmt(perS(fp32) / (rows / s), 2)}x`);
    } else console.log(`python reference  skipped: ${(py.stdout + py.stderr).trim().split('\n').pop()}`);
    console.log(
      `convert shard 0/4 ${shard.records} of ${fp32.records} records, ${shard.decoded} of ${fp32.decoded} rows decoded, ${fmt(shard.seconds)} s and ${fmt(shard.cpuSeconds!)} CPU-s against the whole run's ${fmt(fp32.seconds)} s and ${fmt(fp32.cpuSeconds!)} CPU-s: ` +
        `${fmt(shard.seconds / fp32.seconds, 2)}x the time, ${fmt(shard.cpuSeconds! / fp32.cpuSeconds!, 2)}x the CPU (a quarter: 0.25); peak RSS ${fmt(shard.peakMb, 0)} MB`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === 'part') {
  const part = PARTS[process.argv[3] as keyof typeof PARTS];
  process.stdout.write(JSON.stringify(await part(JSON.parse(process.argv[4]!))) + '\n');
} else await main();

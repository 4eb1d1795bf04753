/**
 * @file Benchmark of `k3m-model evaluate`'s memory (not a test): peak memory against the number
 * of records in the work directory, which must stay flat (evaluate streams its LMDBs and keeps
 * feature rows, not records).
 *
 * For each size it writes a synthetic training LMDB (K3M-shaped: 2048-d region features and
 * 1601 detector classes, `BENCH_BOXES` boxes a record, through lmdb-writer's codec and writer),
 * then runs `k3m-model evaluate` in a child under `/usr/bin/time -v`. It prints two peaks, each
 * of the largest process (evaluate or its worker): the RSS getrusage reports, which counts the
 * LMDB file pages lmdb-js has mapped (evaluate reads every record once to count and check it, so
 * these grow with the file; they are clean page cache the kernel reclaims under pressure), and
 * the anonymous RSS (RssAnon from /proc, sampled every 100 ms): what evaluate itself allocates.
 * The evaluated items are capped (`--max-fit-items`, `--max-eval-items`), so what could still
 * grow with the LMDB is only what evaluate holds of records it does not evaluate. The reference
 * is what evaluate did before: `[...reader]`, every record decoded and held, measured the same
 * way. The two runs it evaluates (`k3m-small` and the `--modalities title,image` baseline) are
 * pretrained for 2 steps on the smallest LMDB and copied to the others.
 *
 *   npx tsx tools/bench/evaluate-memory.ts                     # 1k, 10k, 100k records, 2 boxes each
 *   BENCH_SIZES=1000,10000 BENCH_BOXES=4 BENCH_DIR=/data npx tsx tools/bench/evaluate-memory.ts
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rng } from '@k3m-kit/core';
import { LMDB_FILES } from '@k3m-kit/k3m-model';
import { encodeRecord, TensorpackLmdbWriter, type K3mRecord } from '@k3m-kit/lmdb-writer';

const SIZES = (process.env.BENCH_SIZES ?? '1000,10000,100000').split(',').map(Number);
const BOXES = Number(process.env.BENCH_BOXES ?? 2);
const FIT = Number(process.env.BENCH_FIT ?? 200);
const EVAL = Number(process.env.BENCH_EVAL ?? 100);
const FEATURES = 2048;
const CLASSES = 1601;
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const bin = join(root, 'packages/k3m-model/bin/k3m-model.js');
const dir = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'bench-evaluate-'));
const mb = (bytes: number) => (bytes / 1e6).toFixed(0);

const CATEGORIES = ['连衣裙', 'T恤', '运动鞋', '双肩包', '保温杯', '台灯', '手机壳', '抱枕', '陶瓷碗', '雨伞'];
const COLOURS = ['红色', '蓝色', '黑色', '白色', '绿色', '黄色'];
const WORDS = ['新款', '夏季', '纯棉', '加厚', '便携', '简约', '复古', '商务', '儿童', '大容量'];

/** A few distinct feature blocks reused: drawing 10^8 random floats would dominate the run. */
const rng = new Rng(1);
const pool = Array.from({ length: 16 }, () => Float32Array.from({ length: BOXES * (FEATURES + CLASSES + 4) }, () => rng.next()));

function record(i: number): K3mRecord {
  const p = pool[i % pool.length]!;
  const c = i % CATEGORIES.length;
  const boxes = p.subarray(BOXES * (FEATURES + CLASSES), BOXES * (FEATURES + CLASSES + 4)).map((v, k) => (k % 4 < 2 ? v * 100 : 200 + v * 100));
  return {
    features: p.subarray(0, BOXES * FEATURES),
    clsProb: p.subarray(BOXES * FEATURES, BOXES * (FEATURES + CLASSES)),
    boxes,
    numBoxes: BOXES,
    imageH: 480,
    imageW: 640,
    imageId: `${i}_s0`,
    caption: `${WORDS[i % WORDS.length]}${WORDS[(i >> 3) % WORDS.length]}${COLOURS[i % COLOURS.length]}${CATEGORIES[c]}`,
    pv: `颜色:${COLOURS[i % COLOURS.length]};款式:${WORDS[(i >> 2) % WORDS.length]};`,
    category: CATEGORIES[c]!,
    featureDim: FEATURES,
    numClasses: CLASSES,
  };
}

function writeLmdb(workDir: string, n: number): number {
  const path = join(workDir, LMDB_FILES.train);
  mkdirSync(dirname(path), { recursive: true });
  const { writer } = TensorpackLmdbWriter.open(path, 'bench');
  for (let i = 0; i < n; i++) {
    writer.append(encodeRecord(record(i)));
    if ((i + 1) % 1000 === 0) writer.commit({ fingerprint: 'bench', records: writer.count, lastImageId: `${i}_s0` });
  }
  writer.finish();
  return statSync(path).size;
}

/** Processes whose parent chain reaches `root` (from /proc/<pid>/stat). */
function descendants(root: number): number[] {
  const parent = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      parent.set(Number(name), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone between the listing and the read
    }
  }
  const out: number[] = [];
  for (const pid of parent.keys()) {
    for (let p: number | undefined = pid; p !== undefined && p > 1; p = parent.get(p)) {
      if (p === root) {
        out.push(pid);
        break;
      }
    }
  }
  return out;
}

/** Anonymous resident memory of a process in bytes (its heap; not the LMDB pages it maps). */
function rssAnon(pid: number): number {
  try {
    const kb = /RssAnon:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return kb ? Number(kb[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

interface Measured {
  /** Peak RSS (getrusage, the largest process of the tree), file pages mapped from the LMDB included. */
  rss: number;
  /** Peak anonymous RSS of the largest process, sampled every 100 ms. */
  anon: number;
  seconds: number;
  stdout: string;
}

/** Runs `node args` under /usr/bin/time -v, sampling the process tree's anonymous memory meanwhile. */
async function measured(args: string[], what: string): Promise<Measured> {
  const t = performance.now();
  const child = spawn('/usr/bin/time', ['-v', process.execPath, ...args], { cwd: root });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const peak = new Map<number, number>();
  const sample = setInterval(() => {
    for (const pid of descendants(child.pid!)) peak.set(pid, Math.max(peak.get(pid) ?? 0, rssAnon(pid)));
  }, 100);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearInterval(sample);
  const seconds = (performance.now() - t) / 1000;
  if (code !== 0) throw new Error(`${what} failed (${code}):\n${(stdout + stderr).slice(-3000)}`);
  const kb = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr);
  if (!kb) throw new Error(`${what}: /usr/bin/time printed no maximum resident set size`);
  return { rss: Number(kb[1]) * 1024, anon: Math.max(0, ...peak.values()), seconds, stdout };
}

function pretrain(workDir: string, name: string, modalities: string): void {
  const r = spawnSync(process.execPath, [bin, 'pretrain', '--work-dir', workDir, '--name', name, '--modalities', modalities, '--steps', '2', '--batch-size', '4', '--quiet'], {
    cwd: root,
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`pretrain ${name} failed (${r.status}):\n${(r.stdout + r.stderr).slice(-3000)}`);
}

/** What evaluate did before it streamed: every record of the LMDB decoded and held. */
const WHOLE_LMDB = `
import { RecordReader } from '@k3m-kit/lmdb-writer';
const all = [...RecordReader.open(process.argv[1])];
console.log(all.length);
`;

const rows: { n: number; lmdb: number; ours: Measured; ref: Measured }[] = [];
try {
  const smallest = Math.min(...SIZES);
  const runs = join(dir, `w${smallest}`, 'runs');
  for (const n of [...SIZES].sort((a, b) => a - b)) {
    const workDir = join(dir, `w${n}`);
    const t = performance.now();
    const lmdb = writeLmdb(workDir, n);
    console.log(`${n} records written (${mb(lmdb)} MB) in ${((performance.now() - t) / 1000).toFixed(0)} s`);
    if (n === smallest) {
      pretrain(workDir, 'k3m-small', 'title,image,knowledge');
      pretrain(workDir, 'k3m-small-noknow', 'title,image');
    } else cpSync(runs, join(workDir, 'runs'), { recursive: true });
    const ours = await measured(
      [bin, 'evaluate', '--work-dir', workDir, '--tasks', 'classification,retrieval', '--kinds', 'missing-title', '--rates', '0,100',
        '--max-fit-items', String(FIT), '--max-eval-items', String(EVAL), '--probe-steps', '20', '--quiet', '--json'],
      `evaluate on ${n} records`,
    );
    const report = JSON.parse(ours.stdout) as { in: number; written: number };
    if (report.in !== n) throw new Error(`evaluate read ${report.in} records of ${n}`);
    const ref = await measured(['--import', 'tsx', '--input-type=module', '-e', WHOLE_LMDB, join(workDir, LMDB_FILES.train)], `whole-LMDB load of ${n} records`);
    rows.push({ n, lmdb, ours, ref });
    console.log(
      `${n} records: evaluate peak RSS ${mb(ours.rss)} MB, anonymous ${mb(ours.anon)} MB (${ours.seconds.toFixed(0)} s); holding the whole LMDB ${mb(ref.rss)} MB, anonymous ${mb(ref.anon)} MB`,
    );
    rmSync(join(workDir, LMDB_FILES.train), { force: true });
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

console.log(`\nevaluate, ${BOXES} boxes of ${FEATURES}-d features + ${CLASSES} classes a record; ${FIT} fit and ${EVAL} evaluation items (seeded caps), 2 processes`);
console.log('Reference: the whole LMDB decoded and held, as evaluate did before it streamed ([...reader]), in a bare process.');
console.log('RSS = getrusage peak of the largest process, which counts the LMDB file pages lmdb-js maps (reclaimable page cache);');
console.log('anonymous = peak RssAnon of the largest process (what it allocates), sampled every 100 ms. Growth = above the smallest size.');
console.log('records   LMDB MB   evaluate RSS MB   anonymous MB   growth anon MB   seconds   reference RSS MB   anonymous MB   growth anon MB');
const [first] = rows;
for (const r of rows) {
  console.log(
    [
      String(r.n).padStart(7),
      mb(r.lmdb).padStart(7),
      mb(r.ours.rss).padStart(15),
      mb(r.ours.anon).padStart(12),
      mb(r.ours.anon - first!.ours.anon).padStart(14),
      r.ours.seconds.toFixed(0).padStart(7),
      mb(r.ref.rss).padStart(16),
      mb(r.ref.anon).padStart(12),
      mb(r.ref.anon - first!.ref.anon).padStart(14),
    ].join('   '),
  );
}
const ratio = (xs: number[]) => (Math.max(...xs) / Math.min(...xs)).toFixed(2);
console.log(
  `evaluate from ${first!.n} to ${rows.at(-1)!.n} records: anonymous peak x${ratio(rows.map((r) => r.ours.anon))} (flat = about 1), RSS x${ratio(rows.map((r) => r.ours.rss))}`,
);

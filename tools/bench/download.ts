/**
 * @file Benchmark of raw-ingest's image path (not a test): images/s for fetch, verify, resize and
 * write, next to the reference, sharp alone on the same bytes with the same work in flight, in
 * one run, with CPU time per image, cores kept busy and peak RSS.
 *
 * The images are the embedded sample's (tools/sample: 160-320 px JPEGs, written to a temp dir),
 * or with `BENCH_IMAGES=photos` N distinct 800x800 photo-like JPEGs. A child process serves them
 * on 127.0.0.1 (so serving costs no time on the measured process's event loop); `buildData` then
 * runs over a TSV of their URLs with the CLI's defaults and `--min-side 600`.
 *
 * libuv's thread pool, which runs the decodes, is sized as the CLI sizes it (bin/raw-ingest.cjs:
 * 2 per core + 4); the size only takes effect at process start, so the script re-runs itself
 * with it when UV_THREADPOOL_SIZE is not set. Both sides run in this one process.
 *
 *   npx tsx tools/bench/download.ts                     # the embedded sample's 727 images
 *   BENCH_IMAGES=photos BENCH_N=400 npx tsx tools/bench/download.ts
 *   BENCH_SWEEP=1 npx tsx tools/bench/download.ts       # also other decode counts and sharp threads
 */
import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pLimit from 'p-limit';
import sharp from 'sharp';
import { buildData } from '@k3m-kit/raw-ingest';
import { makeSample } from '@k3m-kit/tools';

const MIN_SIDE = 600;
const QUALITY = 90;
const cores = availableParallelism();
const self = fileURLToPath(import.meta.url);

/** A distinct 800x800 photo-like JPEG (gradients, a seed-placed block and mild noise), about 60-90 KB. */
async function photo(seed: number): Promise<Buffer> {
  const w = 800;
  const h = 800;
  const px = Buffer.alloc(w * h * 3);
  let s = seed * 2654435761;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      s = (s * 1103515245 + 12345) >>> 0;
      const noise = (s >>> 24) % 10;
      const i = (y * w + x) * 3;
      const block = Math.abs(x - ((seed * 97) % w)) < 120 && Math.abs(y - ((seed * 53) % h)) < 90;
      px[i] = ((x + seed * 13) % 256) + noise;
      px[i + 1] = block ? 230 : ((y * 255) / h + noise) & 255;
      px[i + 2] = ((x + y) / 7 + seed * 31 + noise) & 255;
    }
  }
  return sharp(px, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 80 }).toBuffer();
}

/** The child: serves the files of `dir` as /img/<name>, prints the port. */
async function serve(dir: string): Promise<void> {
  const names = new Set(await readdir(dir));
  const server = createServer((req, res) => {
    const name = /^\/img\/([^/]+)$/.exec(req.url ?? '')?.[1];
    if (!name || !names.has(name)) return void res.writeHead(404).end();
    void readFile(join(dir, name)).then((body) => res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': body.length }).end(body));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  process.stdout.write(`${(server.address() as AddressInfo).port}\n`);
}

/** Runs `fn`, returning images/s, CPU ms per image and the cores it kept busy. */
async function measure(n: number, fn: () => Promise<unknown>): Promise<{ perSecond: number; cpuMs: number; cores: number }> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await fn();
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const cpuS = (cpu.user + cpu.system) / 1e6;
  return { perSecond: n / wall, cpuMs: (cpuS * 1000) / n, cores: cpuS / wall };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-download-'));
  const imgDir = join(dir, 'img');
  const photos = process.env.BENCH_IMAGES === 'photos';
  if (photos) {
    const n = Number(process.env.BENCH_N ?? 400);
    await import('node:fs/promises').then((f) => f.mkdir(imgDir));
    for (let i = 0; i < n; i++) await writeFile(join(imgDir, `${i}.jpg`), await photo(i));
  } else {
    await makeSample({ out: join(dir, 'sample') });
    await import('node:fs/promises').then((f) => f.rename(join(dir, 'sample', 'images'), imgDir));
  }
  // Only the decodable images: the sample's planted corrupt ones would fail the same way on both sides.
  const names: string[] = [];
  const bodies: Buffer[] = [];
  for (const name of (await readdir(imgDir)).sort()) {
    const body = await readFile(join(imgDir, name));
    const ok = await sharp(body, { failOn: 'truncated' }).raw().toBuffer().then(() => true, () => false);
    if (ok) {
      names.push(name);
      bodies.push(body);
    } else await rm(join(imgDir, name));
  }
  const N = names.length;
  const meanKb = bodies.reduce((a, b) => a + b.length, 0) / N / 1024;
  const meta = await sharp(bodies[0]).metadata();

  const child = spawn(process.execPath, [...process.execArgv, self, '--serve', imgDir], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<string>((r) => child.stdout.once('data', (d: Buffer) => r(d.toString().trim())));
  const tsv = join(dir, 'bench.tsv');
  await writeFile(tsv, names.map((name, i) => `item${i}\t标题${i}\thttp://127.0.0.1:${port}/img/${name}\t颜色#:#红色\t类目`).join('\n') + '\n');

  const ours = async (decodeConcurrency: number | undefined, run: number) => {
    const workDir = join(dir, `work-${decodeConcurrency}-${run}`);
    const m = await measure(N, async () => {
      const { report } = await buildData({ workDir, input: [tsv], minSide: MIN_SIDE, quiet: true, ...(decodeConcurrency ? { decodeConcurrency } : {}) });
      if (report.images.ok !== N) throw new Error(`only ${report.images.ok}/${N} images stored: ${JSON.stringify(report.images.missingByReason)}`);
    });
    await rm(workDir, { recursive: true, force: true });
    return m;
  };
  const reference = (inFlight: number) =>
    measure(N, () => {
      const limit = pLimit(inFlight);
      return Promise.all(bodies.map((b) => limit(() => sharp(b, { failOn: 'truncated' }).rotate().resize(MIN_SIDE, MIN_SIDE, { fit: 'outside', withoutEnlargement: true }).jpeg({ quality: QUALITY }).toBuffer())));
    });
  const best = <T extends { perSecond: number }>(a: T, b: T) => (a.perSecond >= b.perSecond ? a : b);

  console.log(
    `${N} ${photos ? 'photo-like' : "embedded-sample"} images (${meta.width}x${meta.height} first, mean ${meanKb.toFixed(1)} KB), ${cores} cores, ` +
      `UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE}, sharp.concurrency()=${sharp.concurrency()}, resize to shorter side ${MIN_SIDE} (never enlarge), JPEG q${QUALITY}`,
  );
  // Warm-up: libvips start-up, connection pool, page cache.
  await reference(cores);
  await ours(undefined, -1);
  const sweep = process.env.BENCH_SWEEP ? [...new Set([cores, 2 * cores, 4 * cores, 16])] : [2 * cores];
  const threads = process.env.BENCH_SWEEP ? [1, cores] : [1];
  for (const t of threads) {
    sharp.concurrency(t);
    for (const d of sweep) {
      const o = best(await ours(d, 0), await ours(d, 1));
      const rssOurs = process.resourceUsage().maxRSS / 1024;
      const r = best(await reference(d), await reference(d));
      console.log(
        `sharp threads ${t}, decodes in flight ${d}: ours ${o.perSecond.toFixed(0)} images/s (${o.cpuMs.toFixed(1)} CPU ms/image, ${o.cores.toFixed(2)} cores busy), ` +
          `sharp alone ${r.perSecond.toFixed(0)} images/s (${r.cpuMs.toFixed(1)} CPU ms/image, ${r.cores.toFixed(2)} cores), ratio ${(o.perSecond / r.perSecond).toFixed(2)}; ` +
          `peak RSS ${rssOurs.toFixed(0)} MB; goal >= 170 images/s: ${o.perSecond >= 170 ? 'met' : 'missed'}`,
      );
    }
  }
  child.kill();
  await rm(dir, { recursive: true, force: true });
}

if (process.argv[2] === '--serve') await serve(process.argv[3]!);
else if (process.env.UV_THREADPOOL_SIZE === undefined) {
  // Too late to size this process's pool: run again with the size the CLI uses.
  const r = spawnSync(process.execPath, [...process.execArgv, self, ...process.argv.slice(2)], { stdio: 'inherit', env: { ...process.env, UV_THREADPOOL_SIZE: String(2 * cores + 4) } });
  process.exitCode = r.status ?? 1;
} else await main();

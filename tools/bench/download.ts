/**
 * @file Benchmark of raw-ingest's image path (not a test). Serves N distinct ~800x800 JPEGs from
 * a loopback HTTP server and times `buildData` over a TSV of their URLs: fetch, full decode,
 * resize (shorter side 600, as the region-feature stage wants), encode, atomic write, plus the
 * segment and table files. Then times sharp alone on the same bytes (decode, resize, encode, the
 * same number in flight) as this machine's limit, and prints both and their ratio.
 *
 *   npx tsx tools/bench/download.ts            # N=400
 *   BENCH_N=1000 BENCH_SWEEP=1 npx tsx tools/bench/download.ts   # also try other in-flight counts
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import pLimit from 'p-limit';
import sharp from 'sharp';
import { buildData } from '@k3m-kit/raw-ingest';

const N = Number(process.env.BENCH_N ?? 400);
const MIN_SIDE = 600;

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

async function main(): Promise<void> {
  const cores = availableParallelism();
  console.log(`generating ${N} distinct 800x800 JPEGs ...`);
  const images: Buffer[] = [];
  for (let i = 0; i < N; i++) images.push(await photo(i));
  const meanKb = images.reduce((a, b) => a + b.length, 0) / N / 1024;

  const server = createServer((req, res) => {
    const m = /^\/img\/(\d+)\.jpg$/.exec(req.url ?? '');
    const body = m ? images[Number(m[1])] : undefined;
    if (!body) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': body.length }).end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const dir = await mkdtemp(join(tmpdir(), 'bench-download-'));
  const tsv = join(dir, 'bench.tsv');
  await writeFile(tsv, images.map((_, i) => `item${i}\t标题${i}\t${base}/img/${i}.jpg\t颜色#:#红色\t类目`).join('\n') + '\n');

  const fullPath = async (concurrency: number, decodeConcurrency: number, run: number): Promise<number> => {
    const workDir = join(dir, `work-${concurrency}-${decodeConcurrency}-${run}`);
    const t0 = performance.now();
    const { report } = await buildData({ workDir, input: [tsv], minSide: MIN_SIDE, concurrency, decodeConcurrency, quiet: true });
    const s = (performance.now() - t0) / 1000;
    if (report.images.ok !== N) throw new Error(`only ${report.images.ok}/${N} images stored: ${JSON.stringify(report.images.missingByReason)}`);
    await rm(workDir, { recursive: true, force: true });
    return N / s;
  };
  const sharpOnly = async (inFlight: number): Promise<number> => {
    const limit = pLimit(inFlight);
    const t0 = performance.now();
    await Promise.all(images.map((b) => limit(() => sharp(b, { failOn: 'truncated' }).resize(MIN_SIDE, MIN_SIDE).jpeg({ quality: 90 }).toBuffer())));
    return N / ((performance.now() - t0) / 1000);
  };

  // Warm-up: libvips start-up, connection pool.
  await sharpOnly(4);
  const configs: [number, number][] = process.env.BENCH_SWEEP ? [[64, 4], [64, 8], [16, 8], [128, 8]] : [[64, 8]];
  console.log(`${N} images, mean ${meanKb.toFixed(1)} KB, ${cores} cores, sharp.concurrency() = ${sharp.concurrency()}, resize to shorter side ${MIN_SIDE}`);
  for (const [concurrency, decode] of configs) {
    const limit = Math.max(await sharpOnly(decode), await sharpOnly(decode));
    const full = Math.max(await fullPath(concurrency, decode, 0), await fullPath(concurrency, decode, 1));
    console.log(
      `--concurrency ${concurrency} --decode-concurrency ${decode}: full path ${full.toFixed(0)} images/s, ` +
        `sharp only ${limit.toFixed(0)} images/s, ratio ${(full / limit).toFixed(2)}`,
    );
  }
  server.close();
  await rm(dir, { recursive: true, force: true });
}

await main();

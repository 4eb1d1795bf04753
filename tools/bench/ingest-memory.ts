/**
 * @file Memory of raw-ingest build-data as the input grows (not a test). For each format and
 * size (10k, 100k, 1M synthetic items by default) it writes an input in that format, runs
 * build-data on it in a fresh process and prints the process's peak RSS, next to the reference:
 * the same file loaded whole the naive way (`JSON.parse` of the file for the JSON formats,
 * read and split into lines for the text formats), and their ratio.
 *
 * Items name image files that do not exist, so each one fails fast (`not-found`) and the run
 * measures everything but image decoding: parsing, the duplicate check, segment jobs, status
 * files, tables and the report. TaiSu adds one archive of min(N, 10k) small JPEGs; the other
 * captions stay image-missing (`not-in-archives`).
 *
 *   npx tsx tools/bench/ingest-memory.ts                       # all formats, 10k 100k 1M
 *   BENCH_SIZES=10000,100000 BENCH_FORMATS=p9d,taisu npx tsx tools/bench/ingest-memory.ts
 */
import { spawnSync } from 'node:child_process';
import { createWriteStream, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { buildData, encodeP9dJson, encodeProduct1mLine, encodeRawLine, encodeTaisuArchive, encodeTaisuCaptions, type InputFormat } from '@k3m-kit/raw-ingest';

const SIZES = (process.env.BENCH_SIZES ?? '10000,100000,1000000').split(',').map(Number);
const FORMATS = (process.env.BENCH_FORMATS ?? 'k3m,p9d,product1m,taisu').split(',') as InputFormat[];
const ARCHIVE_MEMBERS = 10_000;
const self = fileURLToPath(import.meta.url);

const title = (i: number) => `夏季新款纯棉短袖T恤女宽松韩版百搭上衣 款${i}`;
const id = (i: number) => String(600_000_000_000 + i * 7);

/** Writes the input of `format` with `n` items under `dir`; returns the --input list. */
async function writeInput(format: InputFormat, n: number, dir: string): Promise<string[]> {
  const range = function* () {
    for (let i = 0; i < n; i++) yield i;
  };
  const lines = function* (make: (i: number) => string) {
    for (const i of range()) yield make(i) + '\n';
  };
  const write = async (name: string, pieces: Iterable<string> | AsyncIterable<Buffer>) => {
    const path = join(dir, name);
    await pipeline(pieces as AsyncIterable<Buffer>, createWriteStream(path));
    return path;
  };
  switch (format) {
    case 'k3m':
      return [await write('train.tsv', lines((i) => encodeRawLine({ itemId: id(i), title: title(i), imageRef: `missing/${i}.jpg`, pairs: [['颜色', '红色'], ['材质', '棉']], category: 'T恤' })))];
    case 'product1m':
      return [await write('product1m_train_ossurl_v2.txt', lines((i) => encodeProduct1mLine({ itemId: id(i), title: title(i), url: `missing/${i}.jpg`, ossUrl: '', instanceLabels: ['AHC 黄金面霜', 'AHC 黄金水'] })))];
    case 'p9d': {
      const entries = function* () {
        for (const i of range()) yield { itemId: id(i), title: title(i), category: 'T恤', domain: i < n / 2 ? '服饰鞋包' : '家居用品', imageLink: `missing/${i}.jpg` };
      };
      return [await write('train.json', encodeP9dJson(entries(), true))];
    }
    case 'taisu': {
      const entries = function* () {
        for (const i of range()) yield { id: `img${id(i)}`, w: title(i), g: `一件T恤 ${i}` };
      };
      const jpeg = await sharp({ create: { width: 16, height: 16, channels: 3, background: '#c03030' } }).jpeg().toBuffer();
      const members = function* () {
        for (let i = 0; i < Math.min(n, ARCHIVE_MEMBERS); i++) yield { name: `img${id(i)}.jpg`, body: jpeg };
      };
      const captions = await write('captions.json', encodeTaisuCaptions(entries()));
      const archive = join(dir, 'images-0.tgz');
      await pipeline(encodeTaisuArchive(members(), { gzip: true }), createWriteStream(archive));
      return [captions, archive];
    }
  }
}

/** Peak RSS of the naive load of the same files (the reference), in a fresh process. */
function referencePeak(format: InputFormat, inputs: string[]): number {
  const r = spawnSync(process.execPath, ['--import', 'tsx', self, '--reference', format, ...inputs], { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) return NaN;
  return JSON.parse(r.stdout.trim().split('\n').pop()!).maxRssMb as number;
}

async function child(): Promise<void> {
  const [mode, format, ...rest] = process.argv.slice(2) as [string, InputFormat, ...string[]];
  if (mode === '--reference') {
    let kept = 0;
    for (const path of rest) {
      if (/\.(tgz|tar)$/.test(path)) continue;
      const text = readFileSync(path, 'utf8');
      kept += format === 'p9d' || format === 'taisu' ? Object.keys(JSON.parse(text)).length : text.split('\n').length;
    }
    console.log(JSON.stringify({ kept, maxRssMb: process.resourceUsage().maxRSS / 1024 }));
    return;
  }
  const [workDir, ...inputs] = rest;
  const t0 = performance.now();
  const { report } = await buildData({ workDir: workDir!, input: inputs, format, quiet: true });
  console.log(JSON.stringify({ in: report.in, written: report.written, reconciles: report.reconciles, imagesOk: report.images.ok, seconds: (performance.now() - t0) / 1000, maxRssMb: process.resourceUsage().maxRSS / 1024 }));
}

async function main(): Promise<void> {
  console.log(`build-data peak RSS by input size (segment size 100000, items fail fast on missing image files${FORMATS.includes('taisu') ? `; TaiSu: one .tgz of min(N, ${ARCHIVE_MEMBERS}) JPEGs` : ''})`);
  console.log('format     items    input MB  seconds  items/s   ours MB  naive load MB  ratio');
  for (const format of FORMATS) {
    for (const n of SIZES) {
      const dir = await mkdtemp(join(process.env.BENCH_DIR ?? tmpdir(), `bench-ingest-${format}-`));
      try {
        const inputs = await writeInput(format, n, dir);
        const mb = inputs.reduce((a, p) => a + statSync(p).size, 0) / 1e6;
        const r = spawnSync(process.execPath, ['--import', 'tsx', self, '--child', format, join(dir, 'work'), ...inputs], { encoding: 'utf8', maxBuffer: 1 << 20 });
        if (r.status !== 0) throw new Error(`${format} ${n}: ${r.stderr}`);
        const ours = JSON.parse(r.stdout.trim().split('\n').pop()!) as { in: number; written: number; reconciles: boolean; seconds: number; maxRssMb: number };
        if (!ours.reconciles || ours.written !== n) throw new Error(`${format} ${n}: ${JSON.stringify(ours)}`);
        const ref = referencePeak(format, inputs);
        console.log(
          `${format.padEnd(9)} ${String(n).padStart(8)} ${mb.toFixed(1).padStart(10)} ${ours.seconds.toFixed(1).padStart(8)} ${(n / ours.seconds).toFixed(0).padStart(8)} ${ours.maxRssMb.toFixed(0).padStart(9)} ${ref.toFixed(0).padStart(14)} ${(ours.maxRssMb / ref).toFixed(2).padStart(6)}`,
        );
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }
  }
}

if (process.argv[2] === '--child' || process.argv[2] === '--reference') await child();
else await main();

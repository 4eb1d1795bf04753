import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildData } from '../src/build-data.ts';
import { readSegmentStatus } from '../src/codecs/segment-status.ts';
import { readItems, readManifest } from '../src/codecs/segment.ts';
import { loopbackOnlyLookup, makeJpeg, startFaultServer, type FaultServer } from '../src/testing.ts';

let server: FaultServer;
let dir: string;

// Each case: id, image ref, expected reason ('ok' for a stored image), expected requests.
const CASES: [string, (base: string) => string, string, number | undefined][] = [
  ['ok', (b) => `${b}/ok/1.jpg`, 'ok', 1],
  ['redirect', (b) => `${b}/hop/2`, 'ok', 1],
  ['404', (b) => `${b}/404`, 'http-404', 1],
  ['flaky', (b) => `${b}/flaky/a`, 'ok', 2],
  ['500', (b) => `${b}/always500`, 'http-500', 3],
  ['slow', (b) => `${b}/slow`, 'timeout', 3],
  ['reset', (b) => `${b}/reset`, 'reset', 3],
  ['cut', (b) => `${b}/cut`, 'incomplete-body', 3],
  ['truncated', (b) => `${b}/truncated.jpg`, 'corrupt-image', 1],
  ['html', (b) => `${b}/html`, 'not-an-image', 1],
  ['huge', (b) => `${b}/huge.jpg`, 'too-many-pixels', 1],
  ['loop', (b) => `${b}/loop`, 'too-many-redirects', 4],
  ['dns', () => 'http://nonexistent.invalid/x.jpg', 'dns', undefined],
  ['relative', () => 'img/local.jpg', 'ok', undefined],
  ['file-url', () => 'file:img/local.jpg', 'ok', undefined],
  ['missing-file', () => 'img/none.jpg', 'not-found', undefined],
  ['text-as-jpg', () => 'img/text.jpg', 'not-an-image', undefined],
];

// The timeout is well above a loaded machine's response time (a retry would show as an extra
// request) and well below /slow's delay.
const OPTS = { timeoutMs: 1500, retries: 2, backoffMs: 10, maxRedirects: 3, maxPixels: 1_000_000, quiet: true } as const;

beforeAll(async () => {
  const huge = await sharp({ create: { width: 1200, height: 1200, channels: 3, background: '#808080' } }).jpeg().toBuffer();
  server = await startFaultServer({ slowMs: 6000, huge });
  dir = await mkdtemp(join(tmpdir(), 'raw-ingest-faults-'));
  await import('node:fs/promises').then((fs) => fs.mkdir(join(dir, 'raw', 'img'), { recursive: true }));
  await writeFile(join(dir, 'raw', 'img', 'local.jpg'), await makeJpeg(5));
  await writeFile(join(dir, 'raw', 'img', 'text.jpg'), 'this is not a jpeg');
  const lines = CASES.map(([id, ref]) => `${id}\t标题 ${id}\t${ref(server.base)}\t颜色#:#红色#;#材质#:#棉\t类目`);
  await writeFile(join(dir, 'raw', 'train.tsv'), lines.join('\n') + '\n');
});

afterAll(async () => {
  await server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('build-data against a fault-injecting server', () => {
  it('ends every fault in its state, keeps image-missing items and reconciles', async () => {
    const workDir = join(dir, 'keep');
    const t0 = performance.now();
    const { report } = await buildData({ ...OPTS, workDir, input: [join(dir, 'raw', 'train.tsv')] }, { lookup: loopbackOnlyLookup });
    const status = (await readSegmentStatus(workDir, 0))!;
    const reasonOf = new Map(status.missing.map((m) => [m.itemId, m.reason]));
    const rows = new Map<string, { pic: string; imageId: string }>();
    for await (const r of readItems(workDir, 'train')) rows.set(r.itemId, r);
    for (const [id, ref, expected, requests] of CASES) {
      expect(reasonOf.get(id) ?? 'ok', id).toBe(expected);
      const row = rows.get(id)!;
      expect(row.pic, id).toBe(expected === 'ok' ? `${row.imageId}.jpg` : '');
      if (requests !== undefined) expect(server.hits.get(new URL(ref(server.base)).pathname), id).toBe(requests);
    }
    const okCount = CASES.filter((c) => c[2] === 'ok').length;
    expect(report).toMatchObject({ in: CASES.length, written: CASES.length, rejected: 0, reconciles: true });
    expect(report.images.ok).toBe(okCount);
    expect(report.images.missing).toBe(CASES.length - okCount);
    expect(report.images.ok + report.images.missing).toBe(report.written);
    expect(Object.values(report.images.missingByReason).reduce((a, b) => a + b, 0)).toBe(report.images.missing);
    // Stored images are real JPEGs; the verified pixels are there.
    const meta = await sharp(join(workDir, 'image', `${rows.get('ok')!.imageId}.jpg`)).metadata();
    expect(meta.format).toBe('jpeg');
    // Nothing waited for a DNS timeout: the slowest case is /slow at 3 x 1.5 s.
    expect(performance.now() - t0).toBeLessThan(30_000);
  });

  it('drops image-missing items with --missing-image drop and counts them as rejected', async () => {
    const workDir = join(dir, 'drop');
    const { report } = await buildData({ ...OPTS, workDir, input: [join(dir, 'raw', 'train.tsv')], missingImage: 'drop' }, { lookup: loopbackOnlyLookup });
    const okCount = CASES.filter((c) => c[2] === 'ok').length;
    expect(report).toMatchObject({ in: CASES.length, written: okCount, rejected: CASES.length - okCount, reconciles: true });
    expect(report.rejectedByReason).toEqual({ 'image-missing': CASES.length - okCount });
    expect((await readManifest(workDir)).segments[0]!.items).toBe(okCount);
    const rejects = (await readFile(join(workDir, 'rejects', 'build-data.jsonl'), 'utf8')).trim().split('\n');
    expect(rejects).toHaveLength(CASES.length - okCount);
    expect(JSON.parse(rejects[0]!)).toMatchObject({ reason: 'image-missing', line: expect.any(Number) });
  });

  it('resumes: complete segments are skipped; --retry-failed refetches only the failed images', async () => {
    const workDir = join(dir, 'retry');
    const tsv = join(dir, 'raw', 'retry.tsv');
    await writeFile(tsv, `a\tt\t${server.base}/ok/7.jpg\t\tc\nb\tt\t${server.base}/flaky/b\t\tc\n`);
    const run = (extra: object = {}) => buildData({ ...OPTS, retries: 0, workDir, input: [tsv], ...extra }, { lookup: loopbackOnlyLookup });
    expect((await run()).report.images).toMatchObject({ ok: 1, missing: 1, missingByReason: { 'http-500': 1 } });
    const second = await run();
    expect(second.report.run).toMatchObject({ segmentsSkipped: 1, imagesFetched: 0 });
    expect(server.hits.get('/flaky/b')).toBe(1);
    const third = await run({ retryFailed: true });
    expect(third.report.images).toMatchObject({ ok: 2, missing: 0 });
    expect(third.report.run).toMatchObject({ imagesFetched: 1, imagesReused: 1 });
    expect(server.hits.get('/ok/7.jpg')).toBe(1);
    expect(server.hits.get('/flaky/b')).toBe(2);
  });

  it('splits one file by a stable hash of the item id with --val-ratio', async () => {
    const tsv = join(dir, 'raw', 'ratio.tsv');
    await writeFile(tsv, Array.from({ length: 200 }, (_, i) => `id${i}\tt\timg/none.jpg\t\tc`).join('\n') + '\n');
    const a = await buildData({ ...OPTS, workDir: join(dir, 'ratio-a'), input: [tsv], valRatio: 0.25 });
    const b = await buildData({ ...OPTS, workDir: join(dir, 'ratio-b'), input: [tsv], valRatio: 0.25, segmentSize: 30 });
    expect(a.report.splits.val.items).toBeGreaterThan(25);
    expect(a.report.splits.val.items).toBeLessThan(75);
    expect(b.report.splits.val.items).toBe(a.report.splits.val.items);
    const man = await readManifest(join(dir, 'ratio-b'));
    expect(man.segments.map((s) => s.seg)).toEqual(man.segments.map((_, i) => i));
  });
});

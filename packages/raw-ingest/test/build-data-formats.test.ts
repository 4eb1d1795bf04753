/**
 * build-data on P9D, Product1M and TaiSu inputs, with every fault of each format planted in a
 * small fixture this test writes. The test keeps its own book of what each record must become
 * (item, reject reason, image state) and checks the report, the reject log with positions, the
 * segments and their extra fields against it. Then, per format, 3 shards + merge must equal one
 * run byte for byte, and a run resumed after losing a segment must equal it too.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildData } from '../src/build-data.ts';
import { encodeP9dJson, type P9dEntry } from '../src/codecs/p9d-json.ts';
import { encodeProduct1mLine } from '../src/codecs/product1m-txt.ts';
import { encodeTaisuArchive } from '../src/codecs/taisu-archive.ts';
import { encodeTaisuCaptions } from '../src/codecs/taisu-captions.ts';
import { readItems, type ItemRow } from '../src/codecs/segment.ts';
import { segmentStatusPath, readSegmentStatus } from '../src/codecs/segment-status.ts';
import type { BuildDataConfigInput } from '../src/config.ts';
import { mergeBuildData, type BuildDataReport } from '../src/finalize.ts';
import { diffWorkDirs, loopbackOnlyLookup, makeJpeg, startFaultServer, type FaultServer } from '../src/testing.ts';

/** What the test expects of one record: an item (with its image state) or a reject reason. */
type Expect = { item: string; image: 'ok' | string; extra?: object } | { reject: string; at: object };

let server: FaultServer;
let dir: string;
let truncatedJpeg: Buffer;

beforeAll(async () => {
  server = await startFaultServer();
  dir = await mkdtemp(join(tmpdir(), 'raw-ingest-formats-'));
  const good = await makeJpeg(3, 64, 64);
  truncatedJpeg = good.subarray(0, Math.floor(good.length * 0.55));
});

afterAll(async () => {
  await server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The test's own count of what the run must report. */
function tally(book: Expect[]) {
  const items = book.filter((e): e is Extract<Expect, { item: string }> => 'item' in e);
  const rejects = book.filter((e): e is Extract<Expect, { reject: string }> => 'reject' in e);
  const byReason: Record<string, number> = {};
  for (const r of rejects) byReason[r.reject] = (byReason[r.reject] ?? 0) + 1;
  const missing: Record<string, number> = {};
  for (const i of items) if (i.image !== 'ok') missing[i.image] = (missing[i.image] ?? 0) + 1;
  return { in: book.length, written: items.length, rejected: rejects.length, byReason, imagesOk: items.filter((i) => i.image === 'ok').length, missing };
}

async function readRejects(workDir: string): Promise<Record<string, unknown>[]> {
  const text = await readFile(join(workDir, 'rejects', 'build-data.jsonl'), 'utf8');
  return text.trim() === '' ? [] : text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function rows(workDir: string): Promise<ItemRow[]> {
  const out: ItemRow[] = [];
  for await (const r of readItems(workDir)) out.push(r);
  return out;
}

/** Checks a whole run against the book: counts, reject log (reason and position), items, image states, extras. */
async function checkAgainstBook(workDir: string, report: BuildDataReport, book: Expect[]) {
  const t = tally(book);
  expect(report).toMatchObject({ in: t.in, written: t.written, rejected: t.rejected, reconciles: true });
  expect(report.rejectedByReason).toEqual(t.byReason);
  expect(report.images.ok).toBe(t.imagesOk);
  expect(report.images.missingByReason).toEqual(t.missing);
  const logged = await readRejects(workDir);
  expect(logged).toHaveLength(t.rejected);
  for (const r of book.filter((e): e is Extract<Expect, { reject: string }> => 'reject' in e)) {
    expect(logged, `${r.reject} at ${JSON.stringify(r.at)}`).toContainEqual(expect.objectContaining({ reason: r.reject, ...r.at }));
  }
  const items = await rows(workDir);
  expect(items).toHaveLength(t.written);
  const byTitle = new Map(items.map((r) => [r.title, r]));
  for (const e of book) {
    if (!('item' in e)) continue;
    const row = byTitle.get(e.item);
    expect(row, e.item).toBeDefined();
    expect(row!.pic === '' ? 'missing' : 'ok', e.item).toBe(e.image === 'ok' ? 'ok' : 'missing');
    if (e.extra) expect(row!.extra, e.item).toEqual(e.extra);
  }
}

/** 3 shards + merge, and a resume after losing segment 1, each equal to the whole run byte for byte. */
async function checkShardsAndResume(name: string, cfg: BuildDataConfigInput, whole: string) {
  const sharded = join(dir, `${name}-sharded`);
  for (const index of [1, 2, 0]) {
    const { report } = await buildData({ ...cfg, workDir: sharded, shard: { index, count: 3 } }, { lookup: loopbackOnlyLookup });
    expect(report.reconciles).toBe(true);
  }
  await mergeBuildData(sharded);
  expect(await diffWorkDirs(whole, sharded, (f) => f.includes('.shard-'))).toEqual([]);

  // A run that died after segment 0: segment 1's marker, files and images are gone.
  const resumed = join(dir, `${name}-resumed`);
  await cp(whole, resumed, { recursive: true });
  const lost = (await readdir(join(resumed, 'image'))).filter((f) => f.endsWith('_s1.jpg'));
  for (const f of [segmentStatusPath(resumed, 1), join(resumed, 'id_title_pvs_cls.txt1'), join(resumed, 'reports', 'build-data.json'), ...lost.map((f) => join(resumed, 'image', f))]) await rm(f, { force: true });
  const { report } = await buildData({ ...cfg, workDir: resumed }, { lookup: loopbackOnlyLookup });
  expect(report.run.segmentsProcessed).toBe(1);
  expect(report.run.imagesFetched).toBe(lost.length);
  expect(await diffWorkDirs(whole, resumed)).toEqual([]);
}

describe('Product1M', () => {
  it('reads both files, falls back to the OSS URL, keeps instance labels, rejects every bad line by line number', async () => {
    const root = join(dir, 'p1m');
    await mkdir(join(root, 'img'), { recursive: true });
    await writeFile(join(root, 'img', 'local.jpg'), await makeJpeg(8));
    await writeFile(join(root, 'img', 'cut.jpg'), truncatedJpeg);
    const b = server.base;
    const train = join(root, 'product1m_train_ossurl_v2.txt');
    const dev = join(root, 'product1m_dev_ossurl_v2.txt');
    const lines: [string | Buffer, Expect][] = [
      [encodeProduct1mLine({ itemId: '101', title: 'p-a', url: `${b}/ok/1.jpg`, ossUrl: `${b}/ok/11.jpg`, instanceLabels: ['AHC 黄金面霜', 'AHC 黄金水'] }), { item: 'p-a', image: 'ok', extra: { instanceLabels: ['AHC 黄金面霜', 'AHC 黄金水'] } }],
      [encodeProduct1mLine({ itemId: '102', title: 'p-b', url: `${b}/404`, ossUrl: `${b}/ok/2.jpg`, instanceLabels: ['x'] }), { item: 'p-b', image: 'ok', extra: { instanceLabels: ['x'] } }],
      ['103#####three fields#####a.jpg', { reject: 'field-count', at: { line: 3, id: '103' } }],
      [encodeProduct1mLine({ itemId: '', title: 'no id', url: 'a.jpg', ossUrl: 'b.jpg', instanceLabels: [] }), { reject: 'empty-id', at: { line: 4 } }],
      [encodeProduct1mLine({ itemId: '105', title: 'no url', url: '', ossUrl: '', instanceLabels: ['y'] }), { reject: 'no-image-ref', at: { line: 5, id: '105' } }],
      [Buffer.concat([Buffer.from('106#####'), Buffer.from([0xd0, 0xc2]), Buffer.from('#####a.jpg#####b.jpg#####z')]), { reject: 'invalid-utf8', at: { line: 6 } }],
      [encodeProduct1mLine({ itemId: '101', title: 'dup', url: `${b}/ok/3.jpg`, ossUrl: '', instanceLabels: [] }), { reject: 'duplicate-id', at: { line: 7, id: '101' } }],
      [encodeProduct1mLine({ itemId: '108', title: 'p-four', url: 'img/local.jpg', ossUrl: 'file:img/local.jpg' }), { item: 'p-four', image: 'ok', extra: { instanceLabels: [] } }],
      [encodeProduct1mLine({ itemId: '109', title: 'p-cut', url: 'img/cut.jpg', ossUrl: 'img/none.jpg', instanceLabels: ['w'] }), { item: 'p-cut', image: 'not-found' }],
    ];
    await writeFile(train, Buffer.concat(lines.flatMap(([l], i) => [typeof l === 'string' ? Buffer.from(l) : l, Buffer.from(i === 1 ? '\r\n' : '\n')])));
    const devLines: [string, Expect][] = [1, 2, 3].map((i) => [
      encodeProduct1mLine({ itemId: `20${i}`, title: `dev-${i}`, url: `${b}/ok/2${i}.jpg`, ossUrl: `${b}/ok/3${i}.jpg`, instanceLabels: [`label ${i}`] }),
      { item: `dev-${i}`, image: 'ok', extra: { instanceLabels: [`label ${i}`] } },
    ]);
    await writeFile(dev, devLines.map(([l]) => l).join('\n') + '\n');
    const book = [...lines.map(([, e]) => e), ...devLines.map(([, e]) => e)];

    const cfg = { input: [`${train}:train`, `${dev}:val`], segmentSize: 2, quiet: true, timeoutMs: 5000, retries: 0 };
    const whole = join(dir, 'p1m-whole');
    const { report } = await buildData({ ...cfg, workDir: whole }, { lookup: loopbackOnlyLookup });
    await checkAgainstBook(whole, report, book);
    // The item whose two references both fail says why for each.
    const status = await readSegmentStatus(whole, 1);
    expect(status?.missing[0]).toMatchObject({ itemId: '109', reason: 'not-found', detail: expect.stringMatching(/img\/cut\.jpg: corrupt-image: .*; img\/none\.jpg: not-found/) });
    await checkShardsAndResume('p1m', cfg, whole);
  });
});

describe('P9D', () => {
  it('reads grouped train.json and flat test.json, keeps the domain, rejects bad values by line and entry, stops at broken JSON', async () => {
    const root = join(dir, 'p9d');
    await mkdir(join(root, 'images'), { recursive: true });
    for (const i of [1, 2, 3, 4, 5]) await writeFile(join(root, 'images', `${i}.jpg`), await makeJpeg(20 + i));
    await writeFile(join(root, 'images', 'html.jpg'), '<html>404</html>');
    const e = (itemId: string, title: string, domain: string, link: Partial<P9dEntry>): P9dEntry => ({ itemId, title, category: `c-${title}`, domain, ...link });
    const trainEntries = [
      e('1', 't-1', '家居用品', { imageLink: 'images/1.jpg' }),
      e('2', 't-2', '家居用品', { ossUrl: `${server.base}/ok/2.jpg` }),
      e('3', 't-3', '3C数码', { imageLink: 'images/gone.jpg', ossUrl: 'images/3.jpg' }),
      e('4', 't-4', '3C数码', { imageLink: 'images/html.jpg' }),
    ];
    // Faults spliced into the encoded text: a value that is not an object, an empty id, no link.
    const train = [...encodeP9dJson(trainEntries, true)].join('').replace(
      '"4": ',
      '"41": "not an object",\n    "": {"title": "no id", "image_link": "images/1.jpg"},\n    "43": {"title": "no link"},\n    "4": ',
    );
    await writeFile(join(root, 'train.json'), train);
    const test = [...encodeP9dJson([e('5', 't-5', '母婴', { imageLink: 'images/5.jpg' }), e('1', 'dup', '母婴', { imageLink: 'images/1.jpg' })], false)].join('');
    await writeFile(join(root, 'test.json'), test);
    const query = '{\n  "6": {"title": "t-6", "industry_name": "食品/保健", "image_link": "images/2.jpg"},\n  "7": {"title": "t-7", "image_li';
    await writeFile(join(root, 'query.json'), query);
    const lineOf = (text: string, needle: string) => text.split('\n').findIndex((l) => l.includes(needle)) + 1;
    const book: Expect[] = [
      { item: 't-1', image: 'ok', extra: { domain: '家居用品' } },
      { item: 't-2', image: 'ok', extra: { domain: '家居用品' } },
      { item: 't-3', image: 'ok', extra: { domain: '3C数码' } },
      { reject: 'bad-value', at: { source: join(root, 'train.json'), line: lineOf(train, '"41"'), entry: 4, id: '41' } },
      { reject: 'empty-id', at: { line: lineOf(train, '"": {'), entry: 5 } },
      { reject: 'no-image-ref', at: { line: lineOf(train, '"43"'), entry: 6, id: '43' } },
      { item: 't-4', image: 'not-an-image', extra: { domain: '3C数码' } },
      { item: 't-5', image: 'ok', extra: { domain: '母婴' } },
      { reject: 'duplicate-id', at: { source: join(root, 'test.json'), line: lineOf(test, '"dup"'), entry: 2, id: '1' } },
      { item: 't-6', image: 'ok', extra: { domain: '食品/保健' } },
      { reject: 'json-syntax', at: { source: join(root, 'query.json'), line: 3, entry: 2 } },
    ];
    const cfg = { input: [`${join(root, 'train.json')}:train`, `${join(root, 'test.json')}:val`, `${join(root, 'query.json')}:val`], segmentSize: 2, quiet: true };
    const whole = join(dir, 'p9d-whole');
    const { report } = await buildData({ ...cfg, workDir: whole }, { lookup: loopbackOnlyLookup });
    await checkAgainstBook(whole, report, book);
    expect(report.splits).toMatchObject({ train: { items: 4 }, val: { items: 2 } });
    // The category column holds cate_name.
    expect((await rows(whole)).find((r) => r.title === 't-3')?.category).toBe('c-t-3');
    await checkShardsAndResume('p9d', cfg, whole);
  });
});

describe('TaiSu', () => {
  let root: string;
  let captions: string;
  let archives: string[];

  beforeAll(async () => {
    root = join(dir, 'taisu');
    await mkdir(root, { recursive: true });
    captions = join(root, 'captions.json');
    const entries = [
      { id: 'img1baiducomitu1', w: 'w-1', g: 'g-1' },
      { id: 'img2', w: 'w-2', g: 'g-2' },
      { id: 'img3', w: 'w-3' },
      { id: 'img4', w: 'w-4', g: 'g-4' },
      { id: 'img5', w: 'w-5', g: 'g-5' },
      { id: 'img6', w: 'w-6', g: 'g-6' },
      { id: 'img7', w: 'w-7', g: 'g-7' },
    ];
    const text = [...encodeTaisuCaptions(entries)].join('').replace('\n}\n', ',\n"img2": {"w": "again"},\n"": {"w": "no id"},\n"img9": "bad"\n}\n');
    await writeFile(captions, text);
    const jpeg = async (n: number) => makeJpeg(40 + n);
    archives = [join(root, 'images-0.tar'), join(root, 'images-1.tgz'), join(root, 'images-2.tar')];
    await pipeline(
      encodeTaisuArchive(
        [
          { name: 'part0/img1baiducomitu1.jpg', body: await jpeg(1) },
          { name: 'part0/readme.txt', body: Buffer.from('not an image') },
          { name: 'part0/img2.jpg', body: await jpeg(2) },
          { name: 'part0/orphan.jpg', body: await jpeg(9) },
        ],
        { gzip: false },
      ),
      createWriteStream(archives[0]!),
    );
    await pipeline(
      encodeTaisuArchive(
        [
          { name: 'img3.jpg', body: await jpeg(3) },
          { name: 'img2.jpg', body: await jpeg(2) },
          { name: 'img4.jpg', body: Buffer.from('<html>gone</html>') },
          { name: 'img5.jpg', body: truncatedJpeg },
        ],
        { gzip: true },
      ),
      createWriteStream(archives[1]!),
    );
    const chunks: Buffer[] = [];
    for await (const c of encodeTaisuArchive([{ name: 'img6.jpg', body: await jpeg(6) }, { name: 'img7.jpg', body: Buffer.alloc(30_000, 1) }], { gzip: false })) chunks.push(c as Buffer);
    const whole = Buffer.concat(chunks);
    await writeFile(archives[2]!, whole.subarray(0, 512 + Math.ceil((await jpeg(6)).length / 512) * 512 + 512 + 10_000));
  });

  /** The book for --caption w (one text record per entry) or both (two). */
  function bookFor(both: boolean): Expect[] {
    const [a0, a1, a2] = archives;
    const text = (n: number, img: string): Expect[] =>
      both && n !== 3 ? [{ item: `w-${n}`, image: img, extra: { captionSource: 'w' } }, { item: `g-${n}`, image: img, extra: { captionSource: 'g' } }] : [{ item: `w-${n}`, image: img, extra: { captionSource: 'w' } }];
    return [
      ...text(1, 'ok'),
      ...text(2, 'ok'),
      ...text(3, 'ok'),
      ...(both ? [{ reject: 'no-caption', at: { source: captions, entry: 3, id: 'img3' } }] : []),
      ...text(4, 'not-an-image'),
      ...text(5, 'corrupt-image'),
      ...text(6, 'ok'),
      ...text(7, 'not-in-archives'),
      ...(both ? [{ reject: 'duplicate-id', at: { entry: 8, id: 'img2' } }] : []),
      { reject: 'duplicate-id', at: { source: captions, entry: 8, id: 'img2' } },
      { reject: 'empty-id', at: { source: captions, entry: 9 } },
      { reject: 'bad-value', at: { source: captions, entry: 10, id: 'img9' } },
      { reject: 'not-an-image', at: { source: a0, entry: 2, member: 'part0/readme.txt' } },
      { reject: 'no-caption', at: { source: a0, entry: 4, member: 'part0/orphan.jpg' } },
      { reject: 'duplicate-member', at: { source: a1, entry: 2, member: 'img2.jpg' } },
      { reject: 'not-an-image', at: { source: a1, entry: 3, member: 'img4.jpg' } },
      { reject: 'truncated-archive', at: { source: a2, entry: 2, member: 'img7.jpg' } },
    ];
  }

  it('--caption w: images straight out of .tar and .tgz, every member and caption fault rejected with archive, entry and member', async () => {
    const cfg = { input: [captions, ...archives], segmentSize: 3, valRatio: 0.3, quiet: true };
    const whole = join(dir, 'taisu-whole');
    const { report } = await buildData({ ...cfg, workDir: whole });
    await checkAgainstBook(whole, report, bookFor(false));
    expect(JSON.parse(await readFile(join(whole, 'build-data', 'parse.json'), 'utf8')).inputs.map((i: { split: string }) => i.split)).toEqual(['hash', 'archive', 'archive', 'archive']);
    // Nothing was unpacked: the only images on disk are the verified ones under image/, and no scratch is left.
    const files = await readdir(whole, { recursive: true });
    expect(files.filter((f) => /\.(jpg|txt)$/.test(f) && !/^image\/\d+_s\d+\.jpg$/.test(f))).toEqual([]);
    expect(files.filter((f) => f.includes('tmp'))).toEqual([]);
    await checkShardsAndResume('taisu', cfg, whole);
  });

  it('--caption both: two text records per image, the caption source kept; --caption on another format is a usage error', async () => {
    const workDir = join(dir, 'taisu-both');
    const { report } = await buildData({ input: [captions, ...archives], caption: 'both', segmentSize: 4, quiet: true, workDir });
    await checkAgainstBook(workDir, report, bookFor(true));
    const images = (await rows(workDir)).filter((r) => r.itemId === 'img1baiducomitu1');
    expect(images.map((r) => r.extra?.captionSource)).toEqual(['w', 'g']);
    await expect(buildData({ input: [join(dir, 'p9d', 'train.json')], caption: 'g', workDir: join(dir, 'x') })).rejects.toThrow(/--caption g: only applies to --format taisu/);
  });
});

describe('TaiSu, killed mid-archive', () => {
  it('SIGKILL while an archive streams in through a pipe, then a rerun, gives the same files as an uninterrupted run', async () => {
    const root = join(dir, 'taisu-kill');
    await mkdir(root, { recursive: true });
    const captions = join(root, 'captions.json');
    const n = 12;
    await writeFile(captions, [...encodeTaisuCaptions(Array.from({ length: n }, (_, i) => ({ id: `k${i}`, w: `kill-${i}` })))].join(''));
    const members = await Promise.all(Array.from({ length: n }, async (_, i) => ({ name: `k${i}.jpg`, body: await makeJpeg(60 + i) })));
    const chunks: Buffer[] = [];
    for await (const c of encodeTaisuArchive(members, { gzip: false })) chunks.push(c as Buffer);
    const tar = Buffer.concat(chunks);
    // The bytes of the first 7 members: the run takes them, fills segments 0 and 1, and waits.
    const prefix = members.slice(0, 7).reduce((a, m) => a + 512 + Math.ceil(m.body.length / 512) * 512, 0);
    const archive = join(root, 'kill.tar');
    expect(spawnSync('mkfifo', [archive]).status).toBe(0);

    const repoRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..');
    const args = (workDir: string) => ['packages/raw-ingest/bin/raw-ingest.cjs', 'build-data', '--work-dir', workDir, '--input', captions, '--input', archive, '--format', 'taisu', '--segment-size', '3', '--quiet'];
    const killed = join(dir, 'taisu-killed');
    const child = spawn(process.execPath, args(killed), { cwd: repoRoot, stdio: 'ignore' });
    const pipe = createWriteStream(archive);
    pipe.on('error', () => undefined);
    pipe.write(tar.subarray(0, prefix));
    const deadline = Date.now() + 60_000;
    // Segments finish in any order (they run concurrently): wait for both.
    const done = () => [0, 1].every((s) => existsSync(join(killed, 'build-data', `segment-${s}.json`)));
    while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    pipe.destroy();
    expect(done(), 'segments 0 and 1 were not complete within 60 s').toBe(true);
    expect(existsSync(join(killed, 'reports', 'build-data.json')), 'the run ended before the kill').toBe(false);

    // The same archive, now whole, at the same path.
    await rm(archive);
    await writeFile(archive, tar);
    const rerun = spawnSync(process.execPath, args(killed), { cwd: repoRoot, encoding: 'utf8' });
    expect(rerun.status, rerun.stderr).toBe(0);
    const full = join(dir, 'taisu-full');
    const whole = spawnSync(process.execPath, args(full), { cwd: repoRoot, encoding: 'utf8' });
    expect(whole.status, whole.stderr).toBe(0);
    expect(await diffWorkDirs(full, killed, (f) => f.endsWith('.tmp'))).toEqual([]);
    const report = JSON.parse(await readFile(join(killed, 'reports', 'build-data.json'), 'utf8')) as BuildDataReport;
    expect(report.run, 'the rerun skips the two segments the killed run completed').toMatchObject({ segmentsSkipped: 2 });
    expect(report).toMatchObject({ in: n, written: n, rejected: 0, reconciles: true, images: { ok: n } });
  });
});

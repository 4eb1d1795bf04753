/**
 * The input-format codecs one by one: Product1M lines, P9D and TaiSu JSON (streamed, with
 * positions), TaiSu archives (plain, gzip, broken), and the format guess.
 */
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createWriteStream } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeProduct1m, encodeProduct1mLine, type Product1mRecord } from '../src/codecs/product1m-txt.ts';
import { decodeP9dJson, encodeP9dJson, type P9dEntry, type P9dRecord } from '../src/codecs/p9d-json.ts';
import { decodeTaisuCaptions, encodeTaisuCaptions, type TaisuCaptionRecord } from '../src/codecs/taisu-captions.ts';
import { encodeTaisuArchive, looksLikeImage, readTaisuArchive, type ArchiveEvent } from '../src/codecs/taisu-archive.ts';
import { streamJsonMembers } from '../src/codecs/json-members.ts';
import { resolveFormat, sniffFormat } from '../src/sources/formats.ts';
import { makeJpeg } from '../src/testing.ts';

async function collect<T>(gen: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of gen) out.push(x);
  return out;
}
const bytes = (...parts: (string | Buffer)[]) => Readable.from([Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : p)))]);
/** The same bytes cut into 7-byte chunks, so tokens, characters and lines straddle chunks. */
const chunked = (text: string) => {
  const b = Buffer.from(text);
  return Readable.from(Array.from({ length: Math.ceil(b.length / 7) }, (_, i) => b.subarray(i * 7, i * 7 + 7)));
};

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'raw-ingest-codecs-'));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('Product1M text', () => {
  it('reads the published layout: two URLs and #;#-joined instance labels; four fields mean no labels', async () => {
    const line = encodeProduct1mLine({ itemId: '623174602918', title: '韩国ahc黄金套盒', url: 'https://img.alicdn.com/a.jpg', ossUrl: 'http://oss/623174602918.jpg', instanceLabels: ['AHC 黄金面霜', 'AHC 黄金水'] });
    expect(line).toBe('623174602918#####韩国ahc黄金套盒#####https://img.alicdn.com/a.jpg#####http://oss/623174602918.jpg#####AHC 黄金面霜#;#AHC 黄金水');
    const recs = await collect(decodeProduct1m(bytes('\uFEFF', line, '\r\n\n', '7#####t#####a.jpg#####b.jpg\n')));
    expect(recs).toEqual<Product1mRecord[]>([
      { ok: true, line: 1, itemId: '623174602918', title: '韩国ahc黄金套盒', imageRefs: ['https://img.alicdn.com/a.jpg', 'http://oss/623174602918.jpg'], instanceLabels: ['AHC 黄金面霜', 'AHC 黄金水'] },
      { ok: true, line: 3, itemId: '7', title: 't', imageRefs: ['a.jpg', 'b.jpg'], instanceLabels: [] },
    ]);
  });

  it('rejects too few or too many fields, empty ids, missing or unusable URLs and invalid UTF-8, each on its own line', async () => {
    const recs = await collect(
      decodeProduct1m(
        bytes(
          '1#####t#####a.jpg\n',
          '2#####t#####a.jpg#####b.jpg#####l#####extra\n',
          '#####t#####a.jpg#####b.jpg#####l\n',
          '4#####t###############l\n',
          '5#####t#####ftp://x/a.jpg#####data:x#####l\n',
          Buffer.from([0x36, 0x23, 0x23, 0x23, 0x23, 0x23, 0xff, 0xfe, 0x0a]),
          '7#####t#####ftp://x/a.jpg#####b.jpg\n',
        ),
      ),
    );
    expect(recs.map((r) => (r.ok ? `${r.line}:ok:${r.imageRefs.join(',')}` : `${r.line}:${r.reason}`))).toEqual([
      '1:field-count',
      '2:field-count',
      '3:empty-id',
      '4:no-image-ref',
      '5:bad-image-ref',
      '6:invalid-utf8',
      '7:ok:b.jpg',
    ]);
  });
});

describe('P9D JSON', () => {
  const entries: P9dEntry[] = [
    { itemId: '1', title: '保温杯', category: '保温杯', domain: '家居用品', imageLink: 'images/1.jpg' },
    { itemId: '2', title: '台灯', category: '台灯', domain: '家居用品', ossUrl: 'https://oss/2.jpg' },
    { itemId: '3', title: '手机壳', category: '手机壳', domain: '3C数码', imageLink: 'images/3.jpg', ossUrl: 'https://oss/3.jpg' },
  ];

  it('reads train.json grouped by domain and the flat test.json form with industry_name, streaming, with lines', async () => {
    for (const grouped of [true, false]) {
      const text = [...encodeP9dJson(entries, grouped)].join('');
      const recs = await collect(decodeP9dJson(chunked(text)));
      expect(recs.map((r) => (r.ok ? [r.itemId, r.domain, r.category, r.imageRefs] : r.reason))).toEqual([
        ['1', '家居用品', '保温杯', ['images/1.jpg']],
        ['2', '家居用品', '台灯', ['https://oss/2.jpg']],
        ['3', '3C数码', '手机壳', ['images/3.jpg', 'https://oss/3.jpg']],
      ]);
      // The line of each key, checked against the text itself.
      const lines = text.split('\n');
      for (const r of recs) expect(lines[r.line - 1], `grouped=${grouped}`).toContain(`"${(r as { itemId: string }).itemId}":`);
      expect(recs.map((r) => r.entry)).toEqual([1, 2, 3]);
    }
  });

  it('rejects bad values, empty ids and missing links by position, and stops at a syntax error with one reject', async () => {
    const text = [
      '{',
      '  "家居用品": {',
      '    "10": {"title": "ok", "image_link": "a.jpg"},',
      '    "11": "not an object",',
      '    "": {"title": "no id", "image_link": "a.jpg"},',
      '    "13": {"title": "no link"},',
      '    "14": {"title": 7, "image_link": "a.jpg"},',
      '    "15": {"title": "t", "oss_url": "ftp://x"}',
      '  },',
      '  "16": {"title": "flat", "industry_name": "母婴", "oss_url": "b.jpg"},',
      '  "17": {"title": "cut", "image_l',
    ].join('\n');
    const recs = await collect(decodeP9dJson(chunked(text)));
    expect(recs.map((r: P9dRecord) => (r.ok ? `${r.line}/${r.entry}:ok:${r.domain}` : `${r.line}/${r.entry}:${r.reason}`))).toEqual([
      '3/1:ok:家居用品',
      '4/2:bad-value',
      '5/3:empty-id',
      '6/4:no-image-ref',
      '7/5:bad-value',
      '8/6:bad-image-ref',
      '10/7:ok:母婴',
      '11/8:json-syntax',
    ]);
  });

  it('counts lines across chunk boundaries exactly, in a file of 2,000 members', async () => {
    const text = '{\n' + Array.from({ length: 2000 }, (_, i) => `"k${i}": {"w": "第${i}行\\n"}`).join(',\n') + '\n}';
    let n = 0;
    for await (const m of streamJsonMembers(chunked(text), { groups: false })) {
      expect(m).toMatchObject({ kind: 'member', key: `k${n}`, line: n + 2, entry: n + 1 });
      n++;
    }
    expect(n).toBe(2000);
  });
});

describe('TaiSu captions JSON', () => {
  it('reads {id: {w, g}}, keeps absent captions absent, rejects bad values and empty ids', async () => {
    const text = [...encodeTaisuCaptions([{ id: 'img1baiducomitu1', w: '网页', g: '生成' }, { id: 'img2', w: 'only web' }])].join('');
    const good = await collect(decodeTaisuCaptions(chunked(text)));
    expect(good).toEqual<TaisuCaptionRecord[]>([
      { ok: true, line: 2, entry: 1, id: 'img1baiducomitu1', w: '网页', g: '生成' },
      { ok: true, line: 3, entry: 2, id: 'img2', w: 'only web' },
    ]);
    const bad = await collect(decodeTaisuCaptions(bytes('{"a": "x", "": {"w": "y"}, "b": {"w": 1}, "c": {"w": null, "g": "z"}}')));
    expect(bad.map((r) => (r.ok ? `ok:${r.id}:${r.w ?? '-'}:${r.g}` : r.reason))).toEqual(['bad-value', 'empty-id', 'bad-value', 'ok:c:-:z']);
  });
});

describe('TaiSu archives', () => {
  it('streams members out of .tar and .tgz (told by magic bytes), skipping directories', async () => {
    const jpeg = await makeJpeg(1);
    for (const [name, gzip] of [['a.tar', false], ['b.tgz', true], ['c.bin', true]] as const) {
      const path = join(dir, name);
      await pipeline(encodeTaisuArchive([{ name: 'part/x1.jpg', body: jpeg }, { name: 'readme.txt', body: Buffer.from('hi') }], { gzip }), createWriteStream(path));
      const events = await collect(readTaisuArchive(path, { maxBytes: 1e6 }));
      expect(events.map((e) => (e.kind === 'member' ? [e.entry, e.name, e.id, e.body?.length] : e.kind))).toEqual([
        [1, 'part/x1.jpg', 'x1', jpeg.length],
        [2, 'readme.txt', 'readme', 2],
      ]);
      expect(looksLikeImage((events[0] as { body: Buffer }).body)).toBe(true);
      expect(looksLikeImage(Buffer.from('<html>'))).toBe(false);
    }
  });

  it('ends a truncated .tar and .tgz with one break event naming the member it stopped in; over-size members come without bytes', async () => {
    const big = Buffer.alloc(20_000, 7);
    for (const gzip of [false, true]) {
      const chunks: Buffer[] = [];
      for await (const c of encodeTaisuArchive([{ name: 'a.jpg', body: big }, { name: 'b.jpg', body: big }, { name: 'c.jpg', body: big }], { gzip })) chunks.push(c as Buffer);
      const whole = Buffer.concat(chunks);
      const path = join(dir, gzip ? 'cut.tgz' : 'cut.tar');
      await writeFile(path, whole.subarray(0, Math.floor(whole.length * (gzip ? 0.5 : 0.55))));
      const events: ArchiveEvent[] = await collect(readTaisuArchive(path, { maxBytes: 15_000 }));
      const last = events[events.length - 1]!;
      expect(last).toMatchObject({ kind: 'broken', reason: 'truncated-archive' });
      expect(events.filter((e) => e.kind === 'member').every((e) => e.kind === 'member' && e.body === undefined)).toBe(true);
      if (!gzip) expect(last).toMatchObject({ entry: 2, member: 'b.jpg' });
    }
    await expect(collect(readTaisuArchive(join(dir, 'absent.tar'), { maxBytes: 1 }))).rejects.toThrow(/ENOENT/);
  });
});

describe('format guess', () => {
  it('tells each format from its first bytes and refuses to guess otherwise', async () => {
    await mkdir(join(dir, 'guess'), { recursive: true });
    const f = (name: string, text: string | Buffer) => writeFile(join(dir, 'guess', name), text).then(() => join(dir, 'guess', name));
    const k3m = await f('a.tsv', '1\tt\ta.jpg\tp#:#v\tc\n');
    const p1m = await f('b.txt', '1#####t#####a.jpg#####b.jpg#####l\n');
    const p9d = await f('c.json', '{\n "家居用品": {\n  "1": {"title": "t", "image_link": "a.jpg"}}}');
    const taisu = await f('d.json', '{"img1": {"w": "x", "g": "y"}}');
    const tgz = join(dir, 'b.tgz');
    expect(await sniffFormat(k3m)).toBe('k3m');
    expect(await sniffFormat(p1m)).toBe('product1m');
    expect(await sniffFormat(p9d)).toBe('p9d');
    expect(await sniffFormat(taisu)).toBe('taisu');
    expect(await sniffFormat(tgz)).toBe('taisu');
    expect(await resolveFormat(undefined, [{ path: taisu }, { path: tgz }])).toBe('taisu');
    const odd = await f('e.csv', 'a,b,c\n1,2,3\n');
    await expect(resolveFormat(undefined, [{ path: odd }])).rejects.toThrow(/--format: cannot tell the format of .*e\.csv.*give --format k3m\|p9d\|product1m\|taisu/);
    await expect(resolveFormat(undefined, [{ path: k3m }, { path: p1m }])).rejects.toThrow(/--format: the inputs look like different formats/);
    expect(await resolveFormat('k3m', [{ path: odd }])).toBe('k3m');
  });
});

/**
 * @file `makeFormatSample`: the embedded sample's items in the layouts of the field's other
 * datasets, with every fault of each layout planted once (design.md section 9; issue 14):
 *
 *   product1m   product1m_train_ossurl_v2.txt (train), product1m_dev_ossurl_v2.txt (val), images/
 *   p9d         train.json (grouped by domain, train), test.json (flat, val), query.json (val, cut
 *               off mid-item), images/
 *   taisu       captions.json, images-0.tar, images-1.tgz, images-2.tar (cut off mid-member)
 *
 * and `faults.json`: every planted fault with its file, position and the reason build-data must
 * give it (with default options; TaiSu with `--caption w`). Items are drawn as in the K3M
 * sample (tools/sample/item.ts), so titles and pictures agree; these formats carry no knowledge
 * pairs, so every item is knowledge-missing. Same seed, same bytes.
 *
 * Product1M items are product instances (products.ts): about one product per four train items;
 * the train list holds several listings of each product (different titles and pictures, one
 * label: the single-product gallery of instance retrieval) and every sixth item is a picture of
 * two products; the dev list (the queries) holds further listings and, every third item, a
 * picture of two or three products carrying all their labels. P9D items carry their category's
 * product domain (catalogue.ts).
 */
import { createWriteStream } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Rng, UsageError, writeFileAtomic } from '@k3m-kit/core';
import { encodeP9dItem, encodeProduct1mLine, encodeTaisuArchive, encodeTaisuCaptions, type P9dEntry, type TaisuCaptions } from '@k3m-kit/raw-ingest';
import { CATEGORIES, type Category, type ColourName } from './catalogue.ts';
import { FAULTS_FILE } from './faults.ts';
import { encodeJpeg, paintImage } from './image.ts';
import { makeItem } from './item.ts';
import { makeBundle, makeListing, makeProducts, type Listing } from './products.ts';

export const SAMPLE_FORMATS = Object.freeze(['p9d', 'product1m', 'taisu'] as const);
export type SampleFormat = (typeof SAMPLE_FORMATS)[number];

export const FORMAT_SAMPLE_DEFAULTS = Object.freeze({ seed: 1, train: 16, valid: 4 });
/** Fewest train items: room for every fault plus clean items around them. */
export const MIN_FORMAT_TRAIN = 14;

/** One planted fault and what build-data must make of it. */
export interface FormatFault {
  kind: string;
  file: string;
  line?: number;
  entry?: number;
  member?: string;
  id?: string;
  /** `rejected`: in the reject log with `reason`; `image-missing`: kept, its image missing with `reason`; `kept`: kept with an image. */
  effect: 'rejected' | 'image-missing' | 'kept';
  reason?: string;
}

/** `faults.json` of a format sample. */
export interface FormatFaultsFile {
  version: 1;
  format: SampleFormat;
  seed: number;
  /** The inputs, in the order to give them, with their split role. */
  inputs: { file: string; role?: 'train' | 'val' }[];
  faults: FormatFault[];
}

export interface FormatSampleOptions {
  out: string;
  format: SampleFormat;
  seed?: number;
  /** Items of the train role (TaiSu: captions entries besides the planted ones). */
  train?: number;
  /** Items of the val role (TaiSu: more captions entries). */
  valid?: number;
}

const HTML = Buffer.from('<html><head><title>404 Not Found</title></head><body>404</body></html>\n');
const GBK = Buffer.from([0xd0, 0xc2, 0xbf, 0xee]);

interface Drawn {
  id: string;
  title: string;
  category: Category;
  colour: ColourName;
  jpeg: Buffer;
  /** Product1M: the instance labels of the products the picture shows. */
  labels: string[];
}

/** Train items per product in the Product1M sample, and the period of its multi-product pictures. */
const PRODUCT1M_LAYOUT = Object.freeze({ itemsPerProduct: 4, trainBundleEvery: 6, devBundleEvery: 3 });

/**
 * Writes a sample of `format` into `out` and returns what `faults.json` records.
 * @example await makeFormatSample({ out: 'work/raw-p9d', format: 'p9d' })
 */
export async function makeFormatSample(o: FormatSampleOptions): Promise<FormatFaultsFile> {
  const seed = o.seed ?? FORMAT_SAMPLE_DEFAULTS.seed;
  const train = o.train ?? FORMAT_SAMPLE_DEFAULTS.train;
  const valid = o.valid ?? FORMAT_SAMPLE_DEFAULTS.valid;
  if (!Number.isInteger(train) || train < MIN_FORMAT_TRAIN) throw new UsageError(`--train ${train}: expected an integer >= ${MIN_FORMAT_TRAIN} for --format ${o.format} (room for every fault)`);
  if (!Number.isInteger(valid) || valid < 1) throw new UsageError(`--valid ${valid}: expected an integer >= 1`);
  const idRng = Rng.from(seed, o.format, 'ids');
  let next = 600_000_000_000 + idRng.intIn(0, 2_000_000_000);
  const nextId = () => String((next += idRng.intIn(1, 5000)));
  const draw = async (split: string, i: number): Promise<Drawn> => {
    const id = nextId();
    const rng = Rng.from(seed, o.format, split, i, 'item');
    const item = makeItem(rng, rng.pick(CATEGORIES));
    const jpeg = await encodeJpeg(paintImage(Rng.from(seed, o.format, split, i, 'image'), item.colour, item.shape), 85);
    return { id, title: item.title, category: item.category, colour: item.colour, jpeg, labels: [] };
  };
  const trainItems: Drawn[] = [];
  const validItems: Drawn[] = [];
  if (o.format === 'product1m') {
    const drawn = await drawProduct1m(seed, train, valid, nextId);
    trainItems.push(...drawn.train);
    validItems.push(...drawn.valid);
  } else {
    for (let i = 0; i < train; i++) trainItems.push(await draw('train', i));
    for (let i = 0; i < valid; i++) validItems.push(await draw('val', i));
  }

  await mkdir(o.out, { recursive: true });
  await rm(join(o.out, 'images'), { recursive: true, force: true });
  if (o.format !== 'taisu') await mkdir(join(o.out, 'images'), { recursive: true });
  const sample =
    o.format === 'product1m' ? await product1m(o.out, trainItems, validItems) : o.format === 'p9d' ? await p9d(o.out, trainItems, validItems) : await taisu(o.out, seed, trainItems, validItems);
  const file: FormatFaultsFile = { version: 1, format: o.format, seed, ...sample };
  await writeFileAtomic(join(o.out, FAULTS_FILE), JSON.stringify(file, null, 2) + '\n');
  return file;
}

type Written = Pick<FormatFaultsFile, 'inputs' | 'faults'>;

/**
 * The Product1M sample's items (see the file header): train listings cycle through the products
 * in a seeded order, every `trainBundleEvery`-th train item shows two products; dev listings
 * cycle through another order, every `devBundleEvery`-th dev item shows two or three.
 */
async function drawProduct1m(seed: number, train: number, valid: number, nextId: () => string): Promise<{ train: Drawn[]; valid: Drawn[] }> {
  const products = makeProducts(Rng.from(seed, 'product1m', 'products'), Math.max(4, Math.round(train / PRODUCT1M_LAYOUT.itemsPerProduct)));
  const side = async (split: 'train' | 'val', n: number, bundleEvery: number, bundleSizes: readonly number[]): Promise<Drawn[]> => {
    const order = Rng.from(seed, 'product1m', split, 'order').shuffle([...products.keys()]);
    const out: Drawn[] = [];
    let singles = 0;
    for (let i = 0; i < n; i++) {
      const id = nextId();
      const rng = Rng.from(seed, 'product1m', split, i, 'item');
      const pictureRng = Rng.from(seed, 'product1m', split, i, 'image');
      let listing: Listing;
      if (i % bundleEvery === bundleEvery - 1) {
        const shown = rng.sample(products, rng.pick(bundleSizes));
        listing = makeBundle(rng, pictureRng, shown);
      } else listing = makeListing(rng, pictureRng, products[order[singles++ % order.length]!]!);
      const first = products.find((p) => p.label === listing.labels[0])!;
      out.push({ id, title: listing.title, category: first.category, colour: first.colour, jpeg: await encodeJpeg(listing.picture, 85), labels: listing.labels });
    }
    return out;
  };
  return {
    train: await side('train', train, PRODUCT1M_LAYOUT.trainBundleEvery, [2]),
    valid: await side('val', valid, PRODUCT1M_LAYOUT.devBundleEvery, [2, 3]),
  };
}

/** Writes `images/<name>` and returns its reference relative to the sample directory. */
async function image(out: string, name: string, bytes: Buffer): Promise<string> {
  await writeFile(join(out, 'images', name), bytes);
  return `images/${name}`;
}

async function product1m(out: string, trainItems: Drawn[], validItems: Drawn[]): Promise<Written> {
  const file = 'product1m_train_ossurl_v2.txt';
  const faults: FormatFault[] = [];
  const lines: Buffer[] = [];
  for (const [i, d] of trainItems.entries()) {
    const line = i + 1;
    const good = await image(out, `p-${i}.jpg`, d.jpeg);
    const plain = { itemId: d.id, title: d.title, url: good, ossUrl: `file:${good}`, instanceLabels: d.labels };
    let text: string | Buffer = encodeProduct1mLine(plain);
    let end = '\n';
    // `null`: the fault has no id (an explicit undefined would take the default).
    const plant = (kind: string, effect: FormatFault['effect'], reason?: string, id: string | null = d.id) =>
      faults.push({ kind, file, line, ...(id !== null ? { id } : {}), effect, ...(reason ? { reason } : {}) });
    switch (i) {
      case 2:
        text = [d.id, d.title, good].join('#####');
        plant('too-few-fields', 'rejected', 'field-count');
        break;
      case 3:
        text = encodeProduct1mLine({ ...plain, itemId: '' });
        plant('empty-id', 'rejected', 'empty-id', null);
        break;
      case 4:
        text = encodeProduct1mLine({ ...plain, url: '', ossUrl: '' });
        plant('no-image-url', 'rejected', 'no-image-ref');
        break;
      case 5:
        text = Buffer.concat([Buffer.from(`${d.id}#####`), GBK, Buffer.from(`#####${good}#####${good}#####${d.labels.join('#;#')}`)]);
        plant('invalid-utf8', 'rejected', 'invalid-utf8', null);
        break;
      case 6:
        text = encodeProduct1mLine({ ...plain, itemId: trainItems[0]!.id });
        plant('duplicate-id', 'rejected', 'duplicate-id', trainItems[0]!.id);
        break;
      case 7:
        text = encodeProduct1mLine({ ...plain, url: 'images/gone.jpg' });
        plant('first-url-dead', 'kept');
        break;
      case 8:
        text = encodeProduct1mLine({ ...plain, url: 'images/gone.jpg', ossUrl: 'images/also-gone.jpg' });
        plant('image-not-found', 'image-missing', 'not-found');
        break;
      case 9: {
        const cut = await image(out, `p-${i}-cut.jpg`, d.jpeg.subarray(0, Math.floor(d.jpeg.length * 0.55)));
        text = encodeProduct1mLine({ ...plain, url: cut, ossUrl: '' });
        plant('image-truncated', 'image-missing', 'corrupt-image');
        break;
      }
      case 10: {
        const html = await image(out, `p-${i}-html.jpg`, HTML);
        text = encodeProduct1mLine({ ...plain, url: html, ossUrl: '' });
        plant('image-not-image', 'image-missing', 'not-an-image');
        break;
      }
      case 11:
        end = '\r\n';
        plant('crlf', 'kept');
        break;
      case 12:
        text = encodeProduct1mLine({ itemId: d.id, title: d.title, url: good, ossUrl: '' });
        plant('no-labels', 'kept');
        break;
    }
    lines.push(typeof text === 'string' ? Buffer.from(text) : text, Buffer.from(end));
  }
  await writeFileAtomic(join(out, file), Buffer.concat(lines));
  const dev = 'product1m_dev_ossurl_v2.txt';
  const devLines: string[] = [];
  for (const [i, d] of validItems.entries()) {
    const good = await image(out, `p-dev-${i}.jpg`, d.jpeg);
    devLines.push(encodeProduct1mLine({ itemId: d.id, title: d.title, url: good, ossUrl: `file:${good}`, instanceLabels: d.labels }));
  }
  await writeFileAtomic(join(out, dev), devLines.join('\n') + '\n');
  return { inputs: [{ file, role: 'train' }, { file: dev, role: 'val' }], faults };
}

async function p9d(out: string, trainItems: Drawn[], validItems: Drawn[]): Promise<Written> {
  const faults: FormatFault[] = [];
  const entry = (d: Drawn, ref: Partial<P9dEntry>): P9dEntry => ({ itemId: d.id, title: d.title, category: d.category.name, domain: d.category.domain, ...ref });
  // train.json, grouped by domain, written line by line so every position is known.
  const file = 'train.json';
  const byDomain = new Map<string, { d: Drawn; i: number }[]>();
  for (const [i, d] of trainItems.entries()) {
    const dom = d.category.domain;
    byDomain.set(dom, [...(byDomain.get(dom) ?? []), { d, i }]);
  }
  const lines = ['{'];
  let n = 0;
  const groups = [...byDomain.entries()];
  for (const [gi, [dom, members]] of groups.entries()) {
    lines.push(`  ${JSON.stringify(dom)}: {`);
    for (const [mi, { d, i }] of members.entries()) {
      const good = await image(out, `t-${i}.jpg`, d.jpeg);
      let key = JSON.stringify(d.id);
      let value = encodeP9dItem(entry(d, i % 2 === 0 ? { imageLink: good } : { ossUrl: good }), true);
      const at = { file, line: lines.length + 1, entry: ++n };
      const plant = (kind: string, effect: FormatFault['effect'], reason?: string, id: string | null = d.id) =>
        faults.push({ kind, ...at, ...(id !== null ? { id } : {}), effect, ...(reason ? { reason } : {}) });
      switch (i) {
        case 2:
          value = JSON.stringify('该商品已下架');
          plant('value-not-object', 'rejected', 'bad-value');
          break;
        case 3:
          value = JSON.stringify({ title: 12345, cate_name: d.category.name, image_link: good });
          plant('title-not-text', 'rejected', 'bad-value');
          break;
        case 4:
          key = '""';
          plant('empty-id', 'rejected', 'empty-id', null);
          break;
        case 5:
          value = JSON.stringify({ title: d.title, cate_name: d.category.name });
          plant('no-image-link', 'rejected', 'no-image-ref');
          break;
        case 6:
          value = encodeP9dItem(entry(d, { imageLink: 'ftp://example.com/a.jpg' }), true);
          plant('unusable-link', 'rejected', 'bad-image-ref');
          break;
        case 7:
          value = encodeP9dItem(entry(d, { imageLink: 'images/gone.jpg', ossUrl: good }), true);
          plant('image-link-dead-oss-good', 'kept');
          break;
        case 8:
          value = encodeP9dItem(entry(d, { imageLink: 'images/gone.jpg' }), true);
          plant('image-not-found', 'image-missing', 'not-found');
          break;
        case 9:
          value = encodeP9dItem(entry(d, { imageLink: await image(out, `t-${i}-cut.jpg`, d.jpeg.subarray(0, Math.floor(d.jpeg.length * 0.55))) }), true);
          plant('image-truncated', 'image-missing', 'corrupt-image');
          break;
        case 10:
          value = encodeP9dItem(entry(d, { imageLink: await image(out, `t-${i}-html.jpg`, HTML) }), true);
          plant('image-not-image', 'image-missing', 'not-an-image');
          break;
      }
      lines.push(`    ${key}: ${value}${mi < members.length - 1 ? ',' : ''}`);
    }
    lines.push(`  }${gi < groups.length - 1 ? ',' : ''}`);
  }
  lines.push('}');
  await writeFileAtomic(join(out, file), lines.join('\n') + '\n');

  // test.json, flat with industry_name; its last item repeats a train id.
  const test = 'test.json';
  const flat: P9dEntry[] = [];
  for (const [i, d] of validItems.entries()) flat.push(entry(d, { imageLink: await image(out, `v-${i}.jpg`, d.jpeg) }));
  flat.push({ ...entry(trainItems[0]!, { imageLink: 'images/t-0.jpg' }), title: '重复的商品' });
  const testLines = ['{', ...flat.map((e, k) => `  ${JSON.stringify(e.itemId)}: ${encodeP9dItem(e, false)}${k < flat.length - 1 ? ',' : ''}`), '}'];
  faults.push({ kind: 'duplicate-id', file: test, line: flat.length + 1, entry: flat.length, id: trainItems[0]!.id, effect: 'rejected', reason: 'duplicate-id' });
  await writeFileAtomic(join(out, test), testLines.join('\n') + '\n');

  // query.json: one item, then the file breaks off inside the second.
  const query = 'query.json';
  const q = validItems[0]!;
  const queryText = `{\n  "${Number(q.id) + 1}": ${encodeP9dItem(entry(q, { imageLink: 'images/v-0.jpg' }), false)},\n  "${Number(q.id) + 2}": {"title": "被截断的`;
  faults.push({ kind: 'truncated-json', file: query, line: 3, entry: 2, effect: 'rejected', reason: 'json-syntax' });
  await writeFileAtomic(join(out, query), queryText);
  return { inputs: [{ file, role: 'train' }, { file: test, role: 'val' }, { file: query, role: 'val' }], faults };
}

async function taisu(out: string, seed: number, trainItems: Drawn[], validItems: Drawn[]): Promise<Written> {
  const faults: FormatFault[] = [];
  const all = [...trainItems, ...validItems];
  const rng = Rng.from(seed, 'taisu', 'ids');
  const idOf = (d: Drawn) => `img${rng.intIn(1, 9)}baiducomitu${d.id}`;
  const ids = all.map(idOf);
  const captions = 'captions.json';
  const entries: TaisuCaptions[] = all.map((d, i) => ({ id: ids[i]!, w: d.title, g: `一件${d.colour}的${d.category.name}` }));
  // Entry 4 has no generated caption (kept with --caption w).
  delete entries[3]!.g;
  faults.push({ kind: 'no-generated-caption', file: captions, line: 5, entry: 4, id: ids[3]!, effect: 'kept' });
  const text = [...encodeTaisuCaptions(entries)].join('').replace(
    /\n}\n$/,
    `,\n${JSON.stringify(ids[1])}: {"w": "重复的标题"},\n"": {"w": "无编号"},\n"img0baiducomitu0": "下架"\n}\n`,
  );
  const base = entries.length;
  faults.push(
    { kind: 'duplicate-id', file: captions, line: base + 2, entry: base + 1, id: ids[1]!, effect: 'rejected', reason: 'duplicate-id' },
    { kind: 'empty-id', file: captions, line: base + 3, entry: base + 2, effect: 'rejected', reason: 'empty-id' },
    { kind: 'value-not-object', file: captions, line: base + 4, entry: base + 3, id: 'img0baiducomitu0', effect: 'rejected', reason: 'bad-value' },
  );
  await writeFileAtomic(join(out, captions), text);

  // Archive 0: the first half, a text file, an image no caption names, a directory.
  const half = Math.floor(all.length / 2);
  const a0 = 'images-0.tar';
  const m0 = [
    ...all.slice(0, half).map((d, i) => ({ name: `part0/${ids[i]}.jpg`, body: d.jpeg })),
    { name: 'part0/readme.txt', body: Buffer.from('TaiSu part 0\n') },
    { name: 'part0/img9baiducomitu1.jpg', body: all[0]!.jpeg },
  ];
  faults.push(
    { kind: 'member-not-image', file: a0, entry: half + 1, member: 'part0/readme.txt', id: 'readme', effect: 'rejected', reason: 'not-an-image' },
    { kind: 'member-without-caption', file: a0, entry: half + 2, member: 'part0/img9baiducomitu1.jpg', id: 'img9baiducomitu1', effect: 'rejected', reason: 'no-caption' },
  );
  await pipeline(encodeTaisuArchive(m0, { gzip: false }), createWriteStream(join(out, a0)));

  // Archive 1 (gzip): the rest but the last two, an HTML page and a cut JPEG in place of two
  // images, and a second copy of an image archive 0 already gave.
  const a1 = 'images-1.tgz';
  const rest = all.slice(half, all.length - 2);
  const m1 = rest.map((d, k) => {
    const i = half + k;
    if (k === 0) return { name: `${ids[i]}.jpg`, body: HTML };
    if (k === 1) return { name: `${ids[i]}.jpg`, body: d.jpeg.subarray(0, Math.floor(d.jpeg.length * 0.55)) };
    return { name: `${ids[i]}.jpg`, body: d.jpeg };
  });
  m1.push({ name: `${ids[0]}.jpg`, body: all[0]!.jpeg });
  faults.push(
    { kind: 'member-html-as-jpg', file: a1, entry: 1, member: `${ids[half]}.jpg`, id: ids[half]!, effect: 'rejected', reason: 'not-an-image' },
    { kind: 'member-html-as-jpg', file: captions, line: half + 2, entry: half + 1, id: ids[half]!, effect: 'image-missing', reason: 'not-an-image' },
    { kind: 'member-truncated-jpeg', file: captions, line: half + 3, entry: half + 2, id: ids[half + 1]!, effect: 'image-missing', reason: 'corrupt-image' },
    { kind: 'duplicate-member', file: a1, entry: m1.length, member: `${ids[0]}.jpg`, id: ids[0]!, effect: 'rejected', reason: 'duplicate-member' },
  );
  await pipeline(encodeTaisuArchive(m1, { gzip: true }), createWriteStream(join(out, a1)));

  // Archive 2 breaks off inside its only member: that item keeps no image, and the last item
  // is in no archive at all.
  const a2 = 'images-2.tar';
  const last = all.length - 2;
  const chunks: Buffer[] = [];
  for await (const c of encodeTaisuArchive([{ name: `${ids[last]}.jpg`, body: all[last]!.jpeg }], { gzip: false })) chunks.push(c as Buffer);
  await writeFile(join(out, a2), Buffer.concat(chunks).subarray(0, 512 + Math.floor(all[last]!.jpeg.length / 2)));
  faults.push(
    { kind: 'truncated-archive', file: a2, entry: 1, member: `${ids[last]}.jpg`, effect: 'rejected', reason: 'truncated-archive' },
    { kind: 'caption-without-member', file: captions, line: last + 2, entry: last + 1, id: ids[last]!, effect: 'image-missing', reason: 'not-in-archives' },
    { kind: 'caption-without-member', file: captions, line: last + 3, entry: last + 2, id: ids[last + 1]!, effect: 'image-missing', reason: 'not-in-archives' },
  );
  return { inputs: [{ file: captions }, { file: a0 }, { file: a1 }, { file: a2 }], faults };
}

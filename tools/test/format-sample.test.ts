/**
 * make-sample --format: each layout's sample is byte-identical for a seed, and faults.json's
 * positions point at the bytes they name (checked here from the files, without raw-ingest); the
 * Product1M sample has product instances (read back from its bytes: labels, titles, pictures).
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { SAMPLE_FORMATS, makeFormatSample, nearestColour, type ColourName } from '../index.ts';

const repoRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'format-sample-'));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function filesOf(d: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const f of await readdir(d, { recursive: true })) {
    const b = await readFile(join(d, f)).catch(() => undefined);
    if (b) out.set(f, b);
  }
  return out;
}

describe('make-sample --format', () => {
  for (const format of SAMPLE_FORMATS) {
    it(`${format}: same seed, same bytes; every planted text fault sits on the line faults.json names`, async () => {
      const a = await makeFormatSample({ out: join(dir, `${format}-a`), format, seed: 3 });
      await makeFormatSample({ out: join(dir, `${format}-b`), format, seed: 3 });
      const [fa, fb] = [await filesOf(join(dir, `${format}-a`)), await filesOf(join(dir, `${format}-b`))];
      expect([...fa.keys()].sort()).toEqual([...fb.keys()].sort());
      for (const [f, bytes] of fa) expect(bytes.equals(fb.get(f)!), f).toBe(true);
      expect(a.faults.filter((f) => f.effect === 'rejected').length).toBeGreaterThanOrEqual(5);
      for (const f of a.faults) {
        if (f.line === undefined || f.id === undefined) continue;
        const line = fa.get(f.file)!.toString('utf8').split('\n')[f.line - 1];
        expect(line, `${f.kind} ${f.file}:${f.line}`).toContain(f.id);
      }
      for (const f of a.faults.filter((x) => x.member !== undefined)) {
        const listing = spawnSync('tar', ['-tf', join(dir, `${format}-a`, f.file)], { encoding: 'utf8' }).stdout.split('\n');
        expect(listing, f.kind).toContain(f.member);
      }
    });
  }

  it('the CLI writes a format sample and says what it planted; too few items is exit 2', () => {
    const out = join(dir, 'cli');
    const ok = spawnSync(process.execPath, ['tools/bin/make-sample.js', '--out', out, '--format', 'product1m', '--json'], { cwd: repoRoot, encoding: 'utf8' });
    expect(ok.status, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ format: 'product1m', inputs: [{ role: 'train' }, { role: 'val' }] });
    const bad = spawnSync(process.execPath, ['tools/bin/make-sample.js', '--out', out, '--format', 'taisu', '--train', '5'], { cwd: repoRoot, encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--train 5: expected an integer >= 14/);
  });
});

/** One line of a Product1M list as the bytes show it: `id#####title#####url#####oss#####labels`. */
interface P1mLine {
  title: string;
  picture: string;
  labels: string[];
}

/** The clean lines: five fields, an id, and a first URL that is a whole JPEG (the planted faults are not). */
async function readP1m(dir: string, file: string): Promise<P1mLine[]> {
  const text = await readFile(join(dir, file), 'utf8');
  const out: P1mLine[] = [];
  for (const f of text.split('\n').map((l) => l.replace(/\r$/, '').split('#####'))) {
    if (f.length !== 5 || f[0] === '' || f[2] === '') continue;
    const bytes = await readFile(join(dir, f[2]!)).catch(() => undefined);
    if (!bytes || bytes[0] !== 0xff || bytes[1] !== 0xd8 || bytes.at(-2) !== 0xff || bytes.at(-1) !== 0xd9) continue;
    out.push({ title: f[1]!, picture: f[2]!, labels: f[4]!.split('#;#').filter(Boolean) });
  }
  return out;
}

/** Palette colours covering at least `share` of a picture's pixels. */
async function coloursOf(path: string, share = 0.02): Promise<Set<ColourName>> {
  const { data, info } = await sharp(path).raw().toBuffer({ resolveWithObject: true });
  const counts = new Map<ColourName, number>();
  for (let o = 0; o < data.length; o += info.channels) {
    const c = nearestColour([data[o]!, data[o + 1]!, data[o + 2]!]);
    counts.set(c, (counts.get(c) ?? 0) + 1);
  }
  const n = data.length / info.channels;
  return new Set([...counts].filter(([, k]) => k / n >= share).map(([c]) => c));
}

describe('make-sample --format product1m: product instances', () => {
  let out: string;
  let train: P1mLine[];
  let dev: P1mLine[];
  beforeAll(async () => {
    out = join(dir, 'p1m-instances');
    await makeFormatSample({ out, format: 'product1m', train: 96, valid: 24 });
    train = await readP1m(out, 'product1m_train_ossurl_v2.txt');
    dev = await readP1m(out, 'product1m_dev_ossurl_v2.txt');
  });

  it('lists several listings of each product in train (the single-product gallery) and queries with one or several products in dev', () => {
    const gallery = new Map<string, P1mLine[]>();
    for (const l of train.filter((x) => x.labels.length === 1)) gallery.set(l.labels[0]!, [...(gallery.get(l.labels[0]!) ?? []), l]);
    expect(gallery.size).toBeGreaterThanOrEqual(20);
    const perProduct = [...gallery.values()].map((ls) => ls.length);
    expect(Math.min(...perProduct)).toBeGreaterThanOrEqual(2);
    expect(train.some((l) => l.labels.length === 2)).toBe(true);
    const multi = dev.filter((l) => l.labels.length > 1);
    expect(multi.length).toBeGreaterThanOrEqual(dev.length / 4);
    expect(dev.some((l) => l.labels.length === 3)).toBe(true);
    // Every query label names a product with listings in the gallery.
    for (const q of dev) for (const label of q.labels) expect(gallery.has(label), `${q.title}: ${label}`).toBe(true);
  });

  it("gives a product's listings different titles that all name its series, and different pictures", async () => {
    const byLabel = new Map<string, P1mLine[]>();
    for (const l of [...train, ...dev].filter((x) => x.labels.length === 1)) byLabel.set(l.labels[0]!, [...(byLabel.get(l.labels[0]!) ?? []), l]);
    for (const [label, listings] of byLabel) {
      const series = label.split(' ')[1]!.slice(0, 2);
      for (const l of listings) expect(l.title, label).toContain(series);
      expect(new Set(listings.map((l) => l.title)).size, label).toBeGreaterThan(1);
      const bytes = await Promise.all(listings.map((l) => readFile(join(out, l.picture))));
      expect(new Set(bytes.map((b) => b.toString('base64'))).size, label).toBe(listings.length);
    }
  });

  it("shows a product in the same colours in every listing, and a multi-product picture holds each product's colours", async () => {
    const byLabel = new Map<string, Set<ColourName>[]>();
    for (const l of train.filter((x) => x.labels.length === 1)) {
      byLabel.set(l.labels[0]!, [...(byLabel.get(l.labels[0]!) ?? []), await coloursOf(join(out, l.picture))]);
    }
    const common = new Map([...byLabel].map(([label, sets]) => [label, [...sets[0]!].filter((c) => sets.every((s) => s.has(c)))]));
    // Body colour and accent: at least two colours every picture of the product shows.
    for (const [label, colours] of common) expect(colours.length, label).toBeGreaterThanOrEqual(2);
    for (const q of dev.filter((l) => l.labels.length > 1)) {
      const shown = await coloursOf(join(out, q.picture), 0.005);
      for (const label of q.labels) expect(common.get(label)!.some((c) => shown.has(c)), `${q.title}: ${label}`).toBe(true);
    }
  });
});

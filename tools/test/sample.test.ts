import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DOMAIN_MAP_FILE, decodeDomainMap } from '@k3m-kit/k3m-model';
import {
  BRANDS,
  CATEGORIES,
  COLOUR_NAMES,
  DOMAINS,
  FAULT_KIND_NAMES,
  MAX_PAIRS,
  MAX_SIDE,
  MIN_PAIRS,
  MIN_SIDE,
  PLACEHOLDER,
  centreColour,
  nearestColour,
  makeSample,
  readFaults,
  type FaultKindName,
  type FaultsFile,
} from '../index.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const tmp: string[] = [];
async function tmpDir(tag: string): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), `k3m-sample-${tag}-`));
  tmp.push(d);
  return d;
}
afterAll(async () => {
  for (const d of tmp) await rm(d, { recursive: true, force: true });
});

/** Every file under `dir`, relative path to bytes. */
async function snapshot(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const p = join(e.parentPath, e.name);
    out.set(p.slice(dir.length + 1), await readFile(p));
  }
  return out;
}

interface Line {
  file: string;
  line: number;
  fields: string[];
  /** The fault this line shows when read from the bytes alone; undefined = clean. */
  fault?: FaultKindName;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Reads the sample back from its bytes alone, without the generator's code, and names the
 * fault each line shows. Ids are deduplicated over both files in order, first wins.
 */
async function analyse(dir: string, files: string[]): Promise<Line[]> {
  const seen = new Set<string>();
  const out: Line[] = [];
  for (const file of files) {
    let bytes = await readFile(join(dir, file));
    if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) bytes = bytes.subarray(3);
    const raw: Buffer[] = [];
    for (let start = 0; start < bytes.length; ) {
      const nl = bytes.indexOf(0x0a, start);
      expect(nl, `${file} ends with a line end`).toBeGreaterThanOrEqual(0);
      raw.push(bytes.subarray(start, nl));
      start = nl + 1;
    }
    for (let i = 0; i < raw.length; i++) {
      let b = raw[i]!;
      const crlf = b[b.length - 1] === 0x0d;
      if (crlf) b = b.subarray(0, -1);
      const rec: Line = { file, line: i + 1, fields: [] };
      out.push(rec);
      let text: string;
      try {
        text = utf8.decode(b);
      } catch {
        rec.fault = 'invalid-utf8';
        continue;
      }
      rec.fields = text.split('\t');
      const faults: FaultKindName[] = crlf ? ['crlf'] : [];
      if (rec.fields.length === 4) faults.push('four-fields');
      else if (rec.fields.length === 6) faults.push('six-fields');
      else if (seen.has(rec.fields[0]!)) faults.push('duplicate-id');
      else {
        const [id, title, ref, kg] = rec.fields as [string, string, string, string];
        seen.add(id);
        if (title === '') faults.push('empty-title');
        const parts = kg.split('#;#');
        if (parts.some((p) => p.split('#:#').length !== 2)) faults.push('malformed-pair');
        const pairs = parts.filter((p) => p.split('#:#').length === 2).map((p) => p.split('#:#') as [string, string]);
        if (pairs.some(([, v]) => v === PLACEHOLDER)) faults.push('placeholder-value');
        if (new Set(pairs.map(([p]) => p)).size !== pairs.length) faults.push('repeated-property');
        const path = join(dir, ref.replace(/^file:/, ''));
        if (!existsSync(path)) faults.push('image-not-found');
        else {
          const img = await readFile(path);
          if (img[0] !== 0xff || img[1] !== 0xd8) faults.push('image-not-image');
          else if (img[img.length - 2] !== 0xff || img[img.length - 1] !== 0xd9) faults.push('image-truncated');
        }
      }
      expect(faults.length, `${file}:${i + 1} shows at most one fault: ${faults}`).toBeLessThanOrEqual(1);
      rec.fault = faults[0];
    }
  }
  return out;
}

describe('embedded sample at the default size', () => {
  let dir: string;
  let faults: FaultsFile;
  let lines: Line[];
  const clean = () => lines.filter((l) => !l.fault);

  beforeAll(async () => {
    dir = await tmpDir('default');
    faults = await makeSample({ out: dir });
    lines = await analyse(dir, ['train.tsv', 'valid.tsv']);
  });

  it('writes train.tsv and valid.tsv with 600 and 150 lines, and faults.json equal to what it returned', async () => {
    expect(faults.files.map((f) => [f.file, f.lines])).toEqual([['train.tsv', 600], ['valid.tsv', 150]]);
    expect(lines.filter((l) => l.file === 'train.tsv')).toHaveLength(600);
    expect(lines.filter((l) => l.file === 'valid.tsv')).toHaveLength(150);
    expect(await readFaults(dir)).toEqual(faults);
  });

  it('writes domains.json: every category of the sample mapped to one of three product domains, each holding a share of the items', async () => {
    const map = decodeDomainMap(await readFile(join(dir, DOMAIN_MAP_FILE), 'utf8'));
    const categories = new Set(lines.filter((l) => l.fields.length === 5).map((l) => l.fields[4]!));
    expect([...categories].sort()).toEqual([...map.keys()].sort());
    expect(new Set(map.values())).toEqual(new Set(DOMAINS));
    const perDomain = new Map<string, number>();
    for (const l of lines.filter((x) => x.fields.length === 5)) perDomain.set(map.get(l.fields[4]!)!, (perDomain.get(map.get(l.fields[4]!)!) ?? 0) + 1);
    for (const d of DOMAINS) expect(perDomain.get(d)!, d).toBeGreaterThan(lines.length / 5);
  });

  it('plants every fault at its rate, and faults.json lists exactly what the bytes show', () => {
    const planted = faults.faults.map((f) => `${f.file}:${f.line}:${f.kind}`).sort();
    const found = lines.filter((l) => l.fault).map((l) => `${l.file}:${l.line}:${l.fault}`).sort();
    expect(found).toEqual(planted);
    for (const f of faults.files) {
      const counted = Object.fromEntries(FAULT_KIND_NAMES.map((k) => [k, lines.filter((l) => l.file === f.file && l.fault === k).length]));
      expect(counted).toEqual(Object.fromEntries(FAULT_KIND_NAMES.map((k) => [k, f.counts[k] ?? 0])));
    }
    // The shipped sample's numbers, as the README states them.
    expect(faults.counts).toEqual({
      'image-not-found': 23,
      'image-truncated': 8,
      'image-not-image': 8,
      'placeholder-value': 15,
      'repeated-property': 15,
      'malformed-pair': 15,
      'empty-title': 4,
      crlf: 15,
      'duplicate-id': 8,
      'four-fields': 4,
      'six-fields': 4,
      'invalid-utf8': 2,
    });
    expect(faults.expected).toMatchObject({ lines: 750, rejected: 18, kept: 732, imageMissing: 39, imageOk: 693 });
    expect(clean().length / lines.length).toBeGreaterThan(0.8);
  });

  it('records ids and image references that match the lines', () => {
    const byKey = new Map(lines.map((l) => [`${l.file}:${l.line}`, l]));
    for (const f of faults.faults) {
      const l = byKey.get(`${f.file}:${f.line}`)!;
      if (f.kind !== 'invalid-utf8') expect(l.fields[0]).toBe(f.id);
      if (f.image) expect(l.fields[2]).toBe(f.image);
    }
    const dups = faults.faults.filter((f) => f.kind === 'duplicate-id');
    for (const d of dups) {
      const first = lines.find((l) => l.fields[0] === d.id)!;
      expect(first.fault, `the line ${d.id} duplicates is clean`).toBeUndefined();
      expect(first.line).toBeLessThan(d.line);
    }
    expect(faults.files.find((f) => f.file === 'valid.tsv')!.bom).toBe(true);
  });

  it('has at least 8 categories, each with its own properties, and 3-15 pairs on clean items', () => {
    expect(CATEGORIES.length).toBeGreaterThanOrEqual(8);
    const cats = new Set(clean().map((l) => l.fields[4]));
    expect(cats.size).toBeGreaterThanOrEqual(8);
    const propsByCat = new Map<string, Set<string>>();
    for (const l of clean()) {
      const pairs = l.fields[3]!.split('#;#').map((p) => p.split('#:#'));
      expect(pairs.length).toBeGreaterThanOrEqual(MIN_PAIRS);
      expect(pairs.length).toBeLessThanOrEqual(MAX_PAIRS);
      expect(pairs.map((p) => p[0])).toContain('颜色');
      for (const [p, v] of pairs) {
        expect(p).toMatch(/^[^#:;\t\r\n]+$/);
        expect(v).toMatch(/^[^#:;\t\r\n]+$/);
      }
      const set = propsByCat.get(l.fields[4]!) ?? new Set();
      for (const [p] of pairs) set.add(p!);
      propsByCat.set(l.fields[4]!, set);
    }
    const signatures = new Set([...propsByCat.values()].map((s) => [...s].sort().join(',')));
    expect(signatures.size).toBe(propsByCat.size);
  });

  it('builds non-empty Chinese titles from the attributes', () => {
    let withColour = 0;
    for (const l of clean()) {
      const [, title, , kg] = l.fields as [string, string, string, string];
      expect(title).toMatch(/\p{Script=Han}/u);
      expect(title).not.toMatch(/[\t\r\n]/);
      const colour = /颜色#:#([^#]+)/.exec(kg)![1]!;
      if (title.includes(colour)) withColour++;
      // A brand named in the title is the item's own 品牌.
      const brand = /品牌#:#([^#]+)/.exec(kg)?.[1];
      if (brand) for (const b of BRANDS) if (title.includes(b)) expect(b).toBe(brand);
    }
    expect(withColour / clean().length).toBeGreaterThan(0.7);
    expect(new Set(clean().map((l) => l.fields[1])).size).toBeGreaterThan(clean().length * 0.95);
  });

  it('references images by relative paths and relative file: URLs only', () => {
    const refs = clean().map((l) => l.fields[2]!);
    expect(refs.every((r) => /^(file:)?(\.\/)?images\/[\w-]+\.jpg$/.test(r))).toBe(true);
    expect(refs.filter((r) => r.startsWith('file:')).length).toBeGreaterThan(20);
    expect(refs.filter((r) => !r.startsWith('file:')).length).toBeGreaterThan(300);
  });

  it('paints each clean image in its 颜色, 160-320 px a side', async () => {
    const seenColours = new Set<string>();
    for (const l of clean()) {
      const colour = /颜色#:#([^#]+)/.exec(l.fields[3]!)![1]!;
      const { data, info } = await sharp(join(dir, l.fields[2]!.replace(/^file:/, ''))).raw().toBuffer({ resolveWithObject: true });
      expect(info.channels).toBe(3);
      for (const side of [info.width, info.height]) {
        expect(side).toBeGreaterThanOrEqual(MIN_SIDE);
        expect(side).toBeLessThanOrEqual(MAX_SIDE);
      }
      const got = centreColour({ width: info.width, height: info.height, data });
      expect(got.colour, `${l.file}:${l.line} ${l.fields[2]}`).toBe(colour);
      expect(got.share).toBeGreaterThan(0.5);
      seenColours.add(colour);
    }
    expect(seenColours.size).toBe(COLOUR_NAMES.length);
  });

  it('draws 形状 as the shape it names: a 方形 抱枕 fills its bounding box, a 圆形 one about pi/4 of it', async () => {
    const pillows = clean().filter((l) => l.fields[4] === '抱枕');
    /** Share of the object's bounding box that shows the object's colour. */
    const fill = async (l: Line) => {
      const colour = /颜色#:#([^#]+)/.exec(l.fields[3]!)![1]!;
      const { data, info } = await sharp(join(dir, l.fields[2]!.replace(/^file:/, ''))).raw().toBuffer({ resolveWithObject: true });
      const rows = new Array<number>(info.height).fill(0);
      const cols = new Array<number>(info.width).fill(0);
      let n = 0;
      for (let y = 0; y < info.height; y++) {
        for (let x = 0; x < info.width; x++) {
          const o = (y * info.width + x) * 3;
          if (nearestColour([data[o]!, data[o + 1]!, data[o + 2]!]) !== colour) continue;
          rows[y]!++;
          cols[x]!++;
          n++;
        }
      }
      // Rows and columns with a few stray pixels (JPEG ringing) do not widen the box.
      const extent = (a: number[]) => a.filter((c) => c > 3).length;
      return n / (extent(rows) * extent(cols));
    };
    const square = pillows.filter((l) => l.fields[3]!.includes('形状#:#方形'));
    const round = pillows.filter((l) => l.fields[3]!.includes('形状#:#圆形'));
    expect(square.length).toBeGreaterThan(2);
    expect(round.length).toBeGreaterThan(2);
    for (const l of square) expect(await fill(l)).toBeGreaterThan(0.93);
    for (const l of round) expect(await fill(l)).toBeGreaterThan(0.72);
    for (const l of round) expect(await fill(l)).toBeLessThan(0.86);
  });
});

describe('determinism', () => {
  it('gives byte-identical files for the same seed and different ones for another seed', async () => {
    const [a, b, c] = [await tmpDir('a'), await tmpDir('b'), await tmpDir('c')];
    await makeSample({ out: a, seed: 7, train: 80, valid: 30 });
    await makeSample({ out: b, seed: 7, train: 80, valid: 30 });
    await makeSample({ out: c, seed: 8, train: 80, valid: 30 });
    const [sa, sb, sc] = [await snapshot(a), await snapshot(b), await snapshot(c)];
    expect([...sa.keys()].sort()).toEqual([...sb.keys()].sort());
    for (const [k, v] of sa) expect(v.equals(sb.get(k)!), k).toBe(true);
    expect(sa.get('train.tsv')!.equals(sc.get('train.tsv')!)).toBe(false);
    const shared = [...sa.keys()].filter((k) => k.startsWith('images/') && sc.has(k));
    expect(shared.filter((k) => !sa.get(k)!.equals(sc.get(k)!)).length).toBeGreaterThan(shared.length / 2);
  });

  it('replaces a previous images/ so a missing file stays missing after regenerating with another seed', async () => {
    const d = await tmpDir('regen');
    await makeSample({ out: d, seed: 1, train: 40, valid: 20 });
    const f = await makeSample({ out: d, seed: 2, train: 40, valid: 20 });
    for (const m of f.faults.filter((x) => x.kind === 'image-not-found')) {
      expect(existsSync(join(d, m.image!.replace(/^file:/, '')))).toBe(false);
    }
  });
});

describe('make-sample CLI', () => {
  const bin = join(repoRoot, 'tools/bin/make-sample.js');
  const run = promisify(execFile);

  it('writes the sample and prints the planted counts', async () => {
    const d = await tmpDir('cli');
    const { stdout } = await run(process.execPath, [bin, '--out', d, '--seed', '3', '--train', '30', '--valid', '20', '--json']);
    const printed = JSON.parse(stdout) as FaultsFile;
    expect(printed).toEqual(await readFaults(d));
    expect(printed.seed).toBe(3);
  });

  it('exits 2 naming the option when a file is too small to hold every fault', async () => {
    const err = await run(process.execPath, [bin, '--out', await tmpDir('bad'), '--train', '5']).catch((e: { code: number; stderr: string }) => e);
    expect((err as { code: number }).code).toBe(2);
    expect((err as { stderr: string }).stderr).toMatch(/--train 5: expected an integer >= \d+/);
  });
});

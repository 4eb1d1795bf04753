/**
 * @file `makeSample`: writes the embedded sample (design.md section 9) into one directory:
 *
 *   <out>/train.tsv, <out>/valid.tsv   raw format: itemID TAB title TAB image TAB KG TAB category
 *   <out>/images/<split>-<nnnnn>.jpg   the pictures, referenced relatively (`images/...`,
 *                                      `./images/...`) or as relative `file:` URLs
 *   <out>/domains.json                 category-to-domain map (k3m-model's codec): the product
 *                                      domains continual pretraining visits one after another
 *   <out>/faults.json                  what was planted (faults.ts), written last
 *
 * The generator owns `<out>/images`: it is rebuilt on every run, so a fault "file does not
 * exist" stays true when a directory is regenerated with another seed.
 */
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError, writeFileAtomic, Rng } from '@k3m-kit/core';
import { DOMAIN_MAP_FILE, encodeDomainMap } from '@k3m-kit/k3m-model';
import { CATEGORIES, COLOUR_PROPERTY, SHAPE_PROPERTY, categoryDomains, propertiesOf } from './catalogue.ts';
import {
  FAULTS_FILE,
  PLACEHOLDER,
  minimumLines,
  planFaults,
  summarise,
  type FaultKindName,
  type FaultRecord,
  type FaultsFile,
  type SampleFile,
} from './faults.ts';
import { encodeJpeg, paintImage } from './image.ts';
import { MAX_PAIRS, makeItem, type Pair, type SampleItem } from './item.ts';

export interface SampleOptions {
  /** Output directory (created if needed). */
  out: string;
  seed?: number;
  /** Lines in train.tsv. */
  train?: number;
  /** Lines in valid.tsv. */
  valid?: number;
}

export const SAMPLE_DEFAULTS = Object.freeze({ seed: 1, train: 600, valid: 150 });

/** Files of one split, in the order they are written. */
const SPLIT_FILES = Object.freeze([
  { split: 'train', file: 'train.tsv', prefix: 'train', bom: false },
  // A byte-order mark, as spreadsheet exports write one (design.md section 6: accept it).
  { split: 'val', file: 'valid.tsv', prefix: 'valid', bom: true },
] as const);

const IMAGES_DIR = 'images';
/** Share of image references written as relative `file:` URLs. */
const FILE_URL_RATE = 0.1;
/** GBK bytes of 新款: what a title from a GBK export looks like when read as UTF-8. */
const GBK_BYTES = Buffer.from([0xd0, 0xc2, 0xbf, 0xee]);
const NOT_AN_IMAGE = '<html><head><title>404 Not Found</title></head><body><h1>404 Not Found</h1></body></html>\n';
const RENDER_CONCURRENCY = 4;
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

interface ImageJob {
  path: string;
  rng: Rng;
  item: SampleItem;
  kind?: FaultKindName;
}

/**
 * Generates the sample and returns what `faults.json` records.
 * @example await makeSample({ out: 'work/raw', seed: 1 })
 */
export async function makeSample(options: SampleOptions): Promise<FaultsFile> {
  const seed = options.seed ?? SAMPLE_DEFAULTS.seed;
  const sizes = { train: options.train ?? SAMPLE_DEFAULTS.train, val: options.valid ?? SAMPLE_DEFAULTS.valid };
  const min = minimumLines();
  for (const [flag, n] of [['--train', sizes.train], ['--valid', sizes.val]] as const) {
    if (!Number.isInteger(n) || n < min) throw new UsageError(`${flag} ${n}: expected an integer >= ${min} (room for every fault)`);
  }
  if (!Number.isInteger(seed) || seed < 0) throw new UsageError(`--seed ${seed}: expected an integer >= 0`);

  const idRng = Rng.from(seed, 'ids');
  let nextId = 600_000_000_000 + idRng.intIn(0, 2_000_000_000);
  const files: SampleFile[] = [];
  const faults: FaultRecord[] = [];
  const tsvs: { file: string; bytes: Buffer }[] = [];
  const jobs: ImageJob[] = [];

  for (const spec of SPLIT_FILES) {
    const n = sizes[spec.split];
    const plan = planFaults(Rng.from(seed, spec.split, 'faults'), n);
    const ids: string[] = [];
    const lines: Buffer[] = spec.bom ? [BOM] : [];
    const counts = {} as Record<FaultKindName, number>;
    for (let i = 0; i < n; i++) {
      const kind = plan.kinds.get(i);
      if (kind) counts[kind] = (counts[kind] ?? 0) + 1;
      nextId += idRng.intIn(1, 5000);
      const dupOf = plan.duplicateOf.get(i);
      const id = dupOf === undefined ? String(nextId) : ids[dupOf]!;
      ids.push(id);

      const rng = Rng.from(seed, spec.split, i, 'item');
      const category = rng.pick(CATEGORIES);
      const item = makeItem(rng, category, kind === 'repeated-property' || kind === 'malformed-pair' ? MAX_PAIRS - 1 : MAX_PAIRS);
      const name = `${spec.prefix}-${String(i).padStart(5, '0')}.jpg`;
      const ref = rng.chance(FILE_URL_RATE) ? `file:${IMAGES_DIR}/${name}` : rng.chance(0.5) ? `./${IMAGES_DIR}/${name}` : `${IMAGES_DIR}/${name}`;
      if (kind !== 'image-not-found') jobs.push({ path: join(IMAGES_DIR, name), rng: Rng.from(seed, spec.split, i, 'image'), item, kind });

      let title: string | Buffer = item.title;
      let detail: string | undefined;
      const pairs: string[] = item.pairs.map(([p, v]) => `${p}#:#${v}`);
      let fields: (string | Buffer)[] | undefined;
      switch (kind) {
        case 'placeholder-value': {
          const j = optionalPairIndex(rng, item.pairs);
          pairs[j] = `${item.pairs[j]![0]}#:#${PLACEHOLDER}`;
          detail = item.pairs[j]![0];
          break;
        }
        case 'repeated-property': {
          const j = optionalPairIndex(rng, item.pairs);
          const [prop, value] = item.pairs[j]!;
          const other = rng.pick(propertiesOf(category).find((x) => x.name === prop)!.values.filter((v) => v !== value));
          pairs.splice(rng.intIn(j + 1, pairs.length), 0, `${prop}#:#${other}`);
          detail = `${prop}: ${value} / ${other}`;
          break;
        }
        case 'malformed-pair': {
          const [prop, value] = rng.pick(item.pairs);
          const bad = rng.pick([`${prop}${value}`, `${prop}：${value}`, `${prop}#${value}`]);
          pairs.splice(rng.intIn(0, pairs.length), 0, bad);
          detail = bad;
          break;
        }
        case 'empty-title':
          title = '';
          break;
        case 'duplicate-id':
          detail = `reuses the id of line ${dupOf! + 1}`;
          break;
        case 'invalid-utf8': {
          const cut = Math.ceil(item.title.length / 2);
          title = Buffer.concat([Buffer.from(item.title.slice(0, cut)), GBK_BYTES, Buffer.from(item.title.slice(cut))]);
          break;
        }
        case 'four-fields':
          fields = [id, title, ref, pairs.join('#;#')];
          break;
        case 'six-fields':
          if (rng.chance(0.5) && item.title.length > 1) {
            const cut = Math.ceil(item.title.length / 2);
            fields = [id, item.title.slice(0, cut), item.title.slice(cut), ref, pairs.join('#;#'), category.name];
            detail = 'TAB inside the title';
          } else {
            fields = [id, title, ref, pairs.join('#;#'), category.name, rng.intIn(9, 399) + '.90'];
            detail = 'trailing extra field';
          }
          break;
      }
      fields ??= [id, title, ref, pairs.join('#;#'), category.name];
      lines.push(joinFields(fields), Buffer.from(kind === 'crlf' ? '\r\n' : '\n'));
      if (kind) {
        const image = kind.startsWith('image-') ? ref : undefined;
        faults.push({ kind, file: spec.file, line: i + 1, id, ...(image ? { image } : {}), ...(detail ? { detail } : {}) });
      }
    }
    files.push({ file: spec.file, split: spec.split, lines: n, bom: spec.bom, counts: sortedCounts(counts) });
    tsvs.push({ file: spec.file, bytes: Buffer.concat(lines) });
  }

  await mkdir(options.out, { recursive: true });
  const partial = join(options.out, `.${IMAGES_DIR}.partial`);
  await rm(partial, { recursive: true, force: true });
  await mkdir(partial, { recursive: true });
  await renderAll(jobs, partial);
  await rm(join(options.out, IMAGES_DIR), { recursive: true, force: true });
  await rename(partial, join(options.out, IMAGES_DIR));
  for (const t of tsvs) await writeFileAtomic(join(options.out, t.file), t.bytes);
  await writeFileAtomic(join(options.out, DOMAIN_MAP_FILE), encodeDomainMap(categoryDomains()));
  const summary = summarise(seed, files, faults);
  await writeFileAtomic(join(options.out, FAULTS_FILE), JSON.stringify(summary, null, 2) + '\n');
  return summary;
}

/** A pair that is neither 颜色 nor 形状 (those must stay true to the picture). */
function optionalPairIndex(rng: Rng, pairs: readonly Pair[]): number {
  const idx = pairs.flatMap(([p], i) => (p === COLOUR_PROPERTY || p === SHAPE_PROPERTY ? [] : [i]));
  return rng.pick(idx);
}

function joinFields(fields: (string | Buffer)[]): Buffer {
  const parts: Buffer[] = [];
  fields.forEach((f, i) => {
    if (i > 0) parts.push(Buffer.from('\t'));
    parts.push(typeof f === 'string' ? Buffer.from(f) : f);
  });
  return Buffer.concat(parts);
}

function sortedCounts(counts: Record<string, number>): Record<FaultKindName, number> {
  return Object.fromEntries(Object.entries(counts).sort(([a], [b]) => (a < b ? -1 : 1))) as Record<FaultKindName, number>;
}

async function renderAll(jobs: ImageJob[], dir: string): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const job = jobs[next++]!;
      await writeFile(join(dir, job.path.slice(IMAGES_DIR.length + 1)), await imageBytes(job));
    }
  };
  await Promise.all(Array.from({ length: RENDER_CONCURRENCY }, worker));
}

async function imageBytes(job: ImageJob): Promise<Buffer | string> {
  if (job.kind === 'image-not-image') return NOT_AN_IMAGE;
  const jpeg = await encodeJpeg(paintImage(job.rng, job.item.colour, job.item.shape), job.rng.intIn(78, 92));
  // Cut inside the entropy-coded data: headers stay intact, the scan ends early.
  return job.kind === 'image-truncated' ? jpeg.subarray(0, Math.floor(jpeg.length * 0.55)) : jpeg;
}

/**
 * @file The bottom-up-attention region-feature TSV (design.md 6.2, k3m-reference.md 2.4),
 * both directions.
 *
 * No header; one image per line; 7 TAB-separated columns:
 *
 *   image_id  image_w  image_h  num_boxes  boxes  features  cls_prob  [attr_prob]
 *
 * and an 8th, `attr_prob` [num_boxes, numAttributes], only when extract ran with
 * `--attributes` (readers that name 7 fields, as csv.DictReader with K3M's FIELDNAMES does,
 * set it aside; our decoder returns it).
 *
 * `boxes` [num_boxes, 4] (x1, y1, x2, y2 in raw pixels), `features` [num_boxes, featureDim]
 * and `cls_prob` [num_boxes, numClasses] are little-endian float32, C order, base64. The K3M
 * writer stores each base64 cell as the Python repr of bytes, `b'...'` (its loader strips two
 * characters in front and one behind unconditionally); the original bottom-up-attention writer
 * stores it bare. The decoder accepts both; the encoder writes `k3m` by default.
 *
 * Dimensions are not in the TSV. The stage writes them to `image_features/meta.json`
 * ({@link FeatureMeta}); the Python loaders assume 2048 and 1601.
 */
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { IoError, writeFileAtomic } from '@k3m-kit/core';

/** The bottom-up-attention detector's sizes (VG, ResNet-101 C4). */
export const FEATURE_DIM = 2048;
export const NUM_CLASSES = 1601;
export const BOX_DIM = 4;
export const MAX_BOXES = 36;

/** TSV forms: how a base64 cell is wrapped. */
export const TSV_FORMS = Object.freeze({
  k3m: { prefix: "b'", suffix: "'" },
  bare: { prefix: '', suffix: '' },
});
export type TsvForm = keyof typeof TSV_FORMS;

/** Feature files per split, as the reference names them: `train.tsv.<k>` and `dev.tsv.<k>`. */
export const TSV_SPLIT_NAMES = Object.freeze({ train: 'train', val: 'dev' });
export const FEATURE_DIR = 'image_features';

export function featureTsvPath(workDir: string, split: keyof typeof TSV_SPLIT_NAMES, k = 0): string {
  return join(workDir, FEATURE_DIR, `${TSV_SPLIT_NAMES[split]}.tsv.${k}`);
}

export interface FeatureRow {
  imageId: string;
  imageW: number;
  imageH: number;
  numBoxes: number;
  /** [numBoxes, 4] */
  boxes: Float32Array;
  /** [numBoxes, featureDim] */
  features: Float32Array;
  /** [numBoxes, numClasses] */
  clsProb: Float32Array;
  /** [numBoxes, numAttributes]: the optional 8th column. */
  attrProb?: Float32Array;
}

export interface FeatureDims {
  featureDim: number;
  numClasses: number;
  /** Width of the optional `attr_prob` column; inferred from the bytes when absent. */
  numAttributes?: number;
}
export const BUA_DIMS: FeatureDims = Object.freeze({ featureDim: FEATURE_DIM, numClasses: NUM_CLASSES });

function b64(a: Float32Array): string {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
}

/** One TSV line (no newline). */
export function encodeFeatureRow(r: FeatureRow, form: TsvForm = 'k3m'): string {
  const { prefix, suffix } = TSV_FORMS[form];
  const cell = (a: Float32Array) => prefix + b64(a) + suffix;
  const cells = [r.imageId, r.imageW, r.imageH, r.numBoxes, cell(r.boxes), cell(r.features), cell(r.clsProb)];
  if (r.attrProb) cells.push(cell(r.attrProb));
  return cells.join('\t');
}

/** A decode result: a row, or the reason the line is unusable (style rule 8). */
export type DecodedFeatureLine =
  | { ok: true; row: FeatureRow; form: TsvForm }
  | { ok: false; reason: string; detail: string; imageId?: string };

const TAB = 9;
const CR = 13;
const EQ = 61;
const PREFIX = Buffer.from(TSV_FORMS.k3m.prefix, 'latin1');
const SUFFIX = TSV_FORMS.k3m.suffix.charCodeAt(0);
/**
 * Base64 is decoded from the line's bytes in slices of this many characters (a multiple of 4,
 * so each slice is whole quads): a slice's string is small enough for V8's young generation,
 * whereas one string per ~400 KB cell took fresh pages from the kernel every row (page faults
 * were a third of convert's CPU).
 */
const B64_SLICE = 1 << 16;

/** The bounds of a cell's base64 body, without the `b'...'` wrapping when it has it. */
function unwrap(line: Buffer, a: number, b: number): { a: number; b: number; form: TsvForm } {
  const wrapped = b - a >= 3 && line[a] === PREFIX[0] && line[a + 1] === PREFIX[1] && line[b - 1] === SUFFIX;
  return wrapped ? { a: a + 2, b: b - 1, form: 'k3m' } : { a, b, form: 'bare' };
}

/** Where decoded arrays are stored: a fresh ArrayBuffer of `bytes` bytes, or one to reuse. */
export type ArrayAllocator = (bytes: number) => ArrayBuffer;
const freshBuffer: ArrayAllocator = (bytes) => Buffer.allocUnsafeSlow(bytes).buffer as ArrayBuffer;

/** The float32s a base64 cell `[a, b)` of the line holds, or undefined when it is not clean base64 of whole floats. */
function floats(line: Buffer, a: number, b: number, alloc: ArrayAllocator): Float32Array | undefined {
  // Node's decoder skips characters outside the alphabet, so a clean cell is one whose decoded
  // length is exactly what its length promises (a regex over ~400 KB cells costs 20x the decode).
  const len = b - a;
  if (len % 4 !== 0) return undefined;
  const pad = len > 0 && line[b - 1] === EQ ? (line[b - 2] === EQ ? 2 : 1) : 0;
  const bytes = (len / 4) * 3 - pad;
  if (bytes % 4 !== 0) return undefined;
  // Its own ArrayBuffer, offset 0: aligned for the Float32Array, and transferable on its own.
  const out = Buffer.from(alloc(bytes), 0, bytes);
  let at = 0;
  for (let from = a; from < b && at < bytes; from += B64_SLICE) at += out.write(line.toString('latin1', from, Math.min(b, from + B64_SLICE)), at, 'base64');
  if (at !== bytes) return undefined;
  return new Float32Array(out.buffer, 0, bytes / 4);
}

/**
 * Decodes one line (without its newline; a final CR is dropped). With `dims`, array lengths are
 * checked against them; without, the widths are inferred from the byte counts (only possible
 * when num_boxes > 0). The line is read as latin1 bytes: the TSV is ASCII (ids and base64).
 * `alloc` gives the arrays' storage (each array gets an ArrayBuffer of its own, at offset 0).
 */
export function decodeFeatureLine(line: string | Uint8Array, dims?: FeatureDims, alloc: ArrayAllocator = freshBuffer): DecodedFeatureLine {
  const buf = typeof line === 'string' ? Buffer.from(line, 'latin1') : Buffer.from(line.buffer, line.byteOffset, line.byteLength);
  const end = buf.length > 0 && buf[buf.length - 1] === CR ? buf.length - 1 : buf.length;
  const cuts = [-1];
  for (let t = buf.indexOf(TAB); t !== -1 && t < end; t = buf.indexOf(TAB, t + 1)) cuts.push(t);
  cuts.push(end);
  const field = (i: number) => buf.toString('latin1', cuts[i]! + 1, cuts[i + 1]);
  const nFields = cuts.length - 1;
  if (nFields !== 7 && nFields !== 8) {
    return { ok: false, reason: 'field-count', detail: `expected 7 TAB-separated fields (8 with attr_prob), got ${nFields}`, imageId: field(0) };
  }
  const [imageId, w, h, n] = [0, 1, 2, 3].map(field) as [string, string, string, string];
  const ints = [w, h, n].map((s) => (/^\d+$/.test(s) ? Number(s) : NaN));
  if (ints.some(Number.isNaN)) return { ok: false, reason: 'bad-integer', detail: `image_w/image_h/num_boxes not integers: ${w} ${h} ${n}`, imageId };
  const [imageW, imageH, numBoxes] = ints as [number, number, number];
  const unwrapped = cuts.slice(4, -1).map((c, i) => unwrap(buf, c + 1, cuts[i + 5]!));
  const arrays = unwrapped.map((u) => floats(buf, u.a, u.b, alloc));
  if (arrays.some((a) => a === undefined)) return { ok: false, reason: 'bad-base64', detail: 'a base64 cell does not decode to float32', imageId };
  const [boxes, features, clsProb, attrProb] = arrays as [Float32Array, Float32Array, Float32Array, Float32Array | undefined];
  const per = (a: Float32Array | undefined) => (numBoxes && a ? a.length / numBoxes : 0);
  const want = { featureDim: per(features), numClasses: per(clsProb), ...dims };
  const checks: [string, Float32Array, number][] = [
    ['boxes', boxes, BOX_DIM],
    ['features', features, want.featureDim],
    ['cls_prob', clsProb, want.numClasses],
  ];
  if (attrProb) checks.push(['attr_prob', attrProb, want.numAttributes ?? per(attrProb)]);
  for (const [name, a, d] of checks) {
    if (a.length !== numBoxes * d || !Number.isInteger(d)) {
      return { ok: false, reason: 'array-length', detail: `${name}: ${a.length} floats for num_boxes=${numBoxes} x ${d}`, imageId };
    }
  }
  const row: FeatureRow = { imageId, imageW, imageH, numBoxes, boxes, features, clsProb };
  if (attrProb) row.attrProb = attrProb;
  return { ok: true, row, form: unwrapped[0]!.form };
}

/**
 * A line's image id (its first field, as {@link decodeFeatureLine} returns it, also for a line
 * it rejects) read from the line's bytes without decoding the rest: a reader that wants only
 * some images' rows (a convert shard) passes over the others for the cost of finding a TAB.
 * @example featureLineImageId(Buffer.from('3_s0\t640\t...')) // '3_s0'
 */
export function featureLineImageId(line: Uint8Array): string {
  const bytes = Buffer.from(line.buffer, line.byteOffset, line.byteLength);
  const tab = bytes.indexOf(9);
  // Without a TAB the whole line is the one field; decodeFeatureLine gets it without a final CR.
  const end = tab !== -1 ? tab : bytes.length > 0 && bytes[bytes.length - 1] === 13 ? bytes.length - 1 : bytes.length;
  return bytes.toString('latin1', 0, end);
}

/** Bytes {@link readFeatureLines} reads at a time (its buffer grows to hold a longer line). */
export const LINE_READ_BYTES = 1 << 22;

/**
 * The non-empty lines of a feature TSV as bytes (without the newline; a final CR is kept, the
 * decoder drops it), with their 1-based numbers, empty lines counted. Lines are cut on bytes:
 * readline's UTF-8 decoding of ~700 KB lines was the bottleneck of every consumer. A line is a
 * view into the read buffer: use it before asking for the next. The file is read into one buffer
 * reused to the end (the unfinished line moved to its front), not a fresh 4 MB buffer per read:
 * the fresh ones cost a page fault per 4 KB and the collections of their external memory, about a
 * fifth of convert's CPU.
 */
export async function* readFeatureLines(path: string, chunkBytes = LINE_READ_BYTES): AsyncGenerator<{ bytes: Buffer; line: number }> {
  let file: FileHandle;
  try {
    file = await open(path, 'r');
  } catch (e) {
    throw new IoError(path, e);
  }
  let buf = Buffer.allocUnsafeSlow(chunkBytes);
  let start = 0; // the unread part of the buffer is [start, end)
  let end = 0;
  let line = 0;
  const nonEmpty = (b: Buffer) => !(b.length === 0 || (b.length === 1 && b[0] === CR));
  try {
    for (;;) {
      const data = buf.subarray(0, end);
      for (let nl = data.indexOf(10, start); nl !== -1; nl = data.indexOf(10, start)) {
        const bytes = data.subarray(start, nl);
        start = nl + 1;
        line++;
        if (nonEmpty(bytes)) yield { bytes, line };
      }
      // The unfinished line to the front; a line longer than the buffer doubles it.
      if (start > 0) {
        buf.copy(buf, 0, start, end);
        end -= start;
        start = 0;
      }
      if (end === buf.length) {
        const bigger = Buffer.allocUnsafeSlow(2 * buf.length);
        buf.copy(bigger, 0, 0, end);
        buf = bigger;
      }
      let bytesRead: number;
      try {
        ({ bytesRead } = await file.read(buf, end, buf.length - end, null));
      } catch (e) {
        throw new IoError(path, e);
      }
      if (bytesRead === 0) break;
      end += bytesRead;
    }
    // A last line without a newline.
    if (end > 0) {
      const bytes = buf.subarray(0, end);
      line++;
      if (nonEmpty(bytes)) yield { bytes, line };
    }
  } finally {
    await file.close();
  }
}

/** Streams a TSV file: every line comes back decoded or with its reason, with its line number. */
export async function* readFeatureTsv(
  path: string,
  dims?: FeatureDims,
): AsyncGenerator<DecodedFeatureLine & { line: number }> {
  for await (const { bytes, line } of readFeatureLines(path)) yield { ...decodeFeatureLine(bytes, dims), line };
}

export const FeatureMetaSchema = z.object({
  featureDim: z.number().int().positive(),
  numClasses: z.number().int().positive(),
  /** Present when the TSVs carry the `attr_prob` column (extract --attributes). */
  numAttributes: z.number().int().positive().optional(),
  maxBoxes: z.number().int().positive(),
  preset: z.string(),
  /** Path of the weights, or the literal 'random-init' with its seed. */
  weights: z.string(),
  form: z.enum(['k3m', 'bare']),
});
export type FeatureMeta = z.infer<typeof FeatureMetaSchema>;

export async function writeFeatureMeta(workDir: string, meta: FeatureMeta): Promise<void> {
  await writeFileAtomic(join(workDir, FEATURE_DIR, 'meta.json'), JSON.stringify(FeatureMetaSchema.parse(meta), null, 2) + '\n');
}

export async function readFeatureMeta(workDir: string): Promise<FeatureMeta> {
  const path = join(workDir, FEATURE_DIR, 'meta.json');
  try {
    return FeatureMetaSchema.parse(JSON.parse(await readFile(path, 'utf8')));
  } catch (e) {
    throw new IoError(path, e);
  }
}

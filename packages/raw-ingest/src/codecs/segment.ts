/**
 * @file The segment files and their manifest: raw-ingest's output and every later stage's
 * source of item metadata (design.md section 4, k3m-reference.md 2.2).
 *
 * Layout of `id_title_pvs_cls.txt<seg>`: UTF-8, `\n` line ends, no header, one item per line,
 * 6 TAB-separated fields in the reference's order:
 *
 *   image_id  title  pic  pv  category  item_id
 *
 * - `image_id` is `<k>_s<seg>`, `k` counting the items of that segment from 0.
 * - `pic` is the image file name under `image/` (`<image_id>.jpg`), or empty when the item is
 *   image-missing (K3M keeps such items: design.md section 5).
 * - `pv` is the raw knowledge with every `#` deleted, as the reference does (`p:v;p:v`).
 *
 * `segments.json` (work dir root) lists every segment with its split, so readers never guess
 * from file numbers. It is derived from the input alone, so every shard writes the same bytes.
 * A segment of a format with fields beyond the six names its sidecar under `extra`
 * (`item_extra<seg>.jsonl`, see item-extra.ts); {@link readItems} attaches them to the rows.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { IoError, readTextLines } from '@k3m-kit/core';
import { readItemExtraFile, type ItemExtra } from './item-extra.ts';

export const SEGMENT_FIELDS = ['image_id', 'title', 'pic', 'pv', 'category', 'item_id'] as const;
export const SEGMENT_PREFIX = 'id_title_pvs_cls.txt';
export const MANIFEST_FILE = 'segments.json';
export const SPLITS = Object.freeze({ train: 'train', val: 'val' });
export type Split = keyof typeof SPLITS;

export interface SegmentRow {
  imageId: string;
  title: string;
  /** Image file name under `image/`; '' when the item is image-missing. */
  pic: string;
  /** Knowledge with `#` deleted: `p:v;p:v`. */
  pv: string;
  category: string;
  itemId: string;
}

export class SegmentFormatError extends Error {
  override name = 'SegmentFormatError';
  constructor(
    readonly path: string,
    readonly line: number,
    message: string,
  ) {
    super(`${path}:${line}: ${message}`);
  }
}

/** `id_title_pvs_cls.txt<seg>` */
export function segmentFileName(seg: number): string {
  return `${SEGMENT_PREFIX}${seg}`;
}

/** `<k>_s<seg>`, the reference's image id. */
export function imageIdFor(k: number, seg: number): string {
  return `${k}_s${seg}`;
}

/** The reference's knowledge cleaning: delete every `#` (k3m-reference.md 2.2 step 2). */
export function stripHashes(kg: string): string {
  return kg.replaceAll('#', '');
}

/** One segment line (without the trailing newline). */
export function encodeSegmentRow(r: SegmentRow): string {
  const fields = [r.imageId, r.title, r.pic, r.pv, r.category, r.itemId];
  for (const f of fields) {
    if (/[\t\r\n]/.test(f)) throw new Error(`segment field contains TAB or a line break: ${JSON.stringify(f)}`);
  }
  return fields.join('\t');
}

export function decodeSegmentLine(text: string, path = '<segment>', line = 0): SegmentRow {
  const f = text.split('\t');
  if (f.length !== 6) throw new SegmentFormatError(path, line, `expected 6 TAB-separated fields, got ${f.length}`);
  const [imageId, title, pic, pv, category, itemId] = f as [string, string, string, string, string, string];
  if (!/^\d+_s\d+$/.test(imageId)) throw new SegmentFormatError(path, line, `bad image_id ${JSON.stringify(imageId)}`);
  return { imageId, title, pic, pv, category, itemId };
}

/** Streams the rows of one segment file with their 1-based line numbers. */
export async function* readSegmentFile(path: string): AsyncGenerator<SegmentRow & { line: number }> {
  for await (const { text, line } of readTextLines(path)) yield { ...decodeSegmentLine(text, path, line), line };
}

export const SegmentEntrySchema = z.object({
  seg: z.number().int().nonnegative(),
  split: z.enum(['train', 'val']),
  file: z.string(),
  items: z.number().int().nonnegative(),
  /** The segment's sidecar of extra fields, when its format has any. */
  extra: z.string().optional(),
});
export type SegmentEntry = z.infer<typeof SegmentEntrySchema>;

export const ManifestSchema = z.object({
  version: z.literal(1),
  segmentSize: z.number().int().positive(),
  segments: z.array(SegmentEntrySchema),
});
export type SegmentManifest = z.infer<typeof ManifestSchema>;

export function encodeManifest(m: SegmentManifest): string {
  return JSON.stringify(ManifestSchema.parse(m), null, 2) + '\n';
}

/** Reads and validates `<workDir>/segments.json`. */
export async function readManifest(workDir: string): Promise<SegmentManifest> {
  const path = join(workDir, MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new IoError(path, `${(e as Error).message} (run raw-ingest build-data first)`);
  }
  const parsed = ManifestSchema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new IoError(path, `invalid manifest: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}

/** A segment row as {@link readItems} hands it out. */
export type ItemRow = SegmentRow & { seg: number; split: Split; line: number; extra?: ItemExtra };

/**
 * Streams every item of a split (or all), segment by segment in manifest order, with its extra
 * fields (`extra`) when the segment has a sidecar.
 * @example for await (const row of readItems('work', 'train')) console.log(row.imageId, row.extra?.domain)
 */
export async function* readItems(
  workDir: string,
  split?: Split,
  filter: (e: SegmentEntry) => boolean = () => true,
): AsyncGenerator<ItemRow> {
  const manifest = await readManifest(workDir);
  for (const e of manifest.segments) {
    if ((split && e.split !== split) || !filter(e)) continue;
    const extraPath = e.extra === undefined ? undefined : join(workDir, e.extra);
    const extras = extraPath === undefined ? undefined : readItemExtraFile(extraPath)[Symbol.asyncIterator]();
    try {
      for await (const row of readSegmentFile(join(workDir, e.file))) {
        if (!extras) {
          yield { ...row, seg: e.seg, split: e.split };
          continue;
        }
        const x = await extras.next();
        if (x.done || x.value.imageId !== row.imageId) {
          throw new IoError(extraPath!, `${x.done ? 'ends' : `has ${x.value.imageId}`} where row ${row.line} of ${e.file} (${row.imageId}) needs its line`);
        }
        yield { ...row, seg: e.seg, split: e.split, extra: x.value.extra };
      }
    } finally {
      await extras?.return?.(undefined);
    }
  }
}

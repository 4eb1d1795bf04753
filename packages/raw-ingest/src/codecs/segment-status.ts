/**
 * @file build-data's per-segment status file, `build-data/segment-<seg>.json`. It is written
 * last for a segment, after the segment file and its images, so its presence marks the segment
 * complete (resume skips it). It also holds, per item whose image failed, the reason: this is
 * where a user looks up why an item is image-missing.
 *
 * Layout (JSON, 2-space indent, trailing newline; no timings, so reruns write the same bytes):
 *
 *   { "version": 1, "seg": 0, "split": "train", "items": 400, "kept": 400,
 *     "imagesOk": 390, "imageBytes": 123456,
 *     "missing": [ { "imageId": "3_s0", "itemId": "...", "source": "raw/train.tsv", "line": 4,
 *                    "ref": "http://...", "reason": "http-404", "detail": "...", "dropped": false } ] }
 *
 * `items` counts the items assigned to the segment by the parse pass, `kept` those written to the
 * segment file (fewer only with `--missing-image drop`). An item's position in its source is
 * `line` for line formats; JSON sources add `entry` (the item's ordinal in the file). `ref` is the
 * first image reference (for TaiSu, `<archive>:<member>`, or '' when no member had the image).
 */
import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import Assembler from 'stream-json/assembler.js';
import { parser } from 'stream-json/parser.js';

export const STATUS_DIR = 'build-data';

export const MissingImageSchema = z.object({
  imageId: z.string(),
  itemId: z.string(),
  source: z.string(),
  line: z.number().int().positive().optional(),
  entry: z.number().int().positive().optional(),
  member: z.string().optional(),
  ref: z.string(),
  reason: z.string(),
  detail: z.string(),
  dropped: z.boolean(),
});
export type MissingImage = z.infer<typeof MissingImageSchema>;

export const SegmentStatusSchema = z.object({
  version: z.literal(1),
  seg: z.number().int().nonnegative(),
  split: z.enum(['train', 'val']),
  items: z.number().int().nonnegative(),
  kept: z.number().int().nonnegative(),
  imagesOk: z.number().int().nonnegative(),
  imageBytes: z.number().int().nonnegative(),
  missing: z.array(MissingImageSchema),
});
export type SegmentStatus = z.infer<typeof SegmentStatusSchema>;

const StatusHeadSchema = SegmentStatusSchema.omit({ missing: true });
/** A status without its list of image-missing items. */
export type SegmentStatusHead = z.infer<typeof StatusHeadSchema>;

/** `build-data/segment-<seg>.json` under `workDir`. */
export function segmentStatusPath(workDir: string, seg: number): string {
  return join(workDir, STATUS_DIR, `segment-${seg}.json`);
}

export function encodeSegmentStatus(s: SegmentStatus): string {
  return JSON.stringify(SegmentStatusSchema.parse(s), null, 2) + '\n';
}

/**
 * The same file in pieces, for a writer that streams the `missing` list instead of holding it:
 * `head` (everything up to the list), one {@link encodeMissingEntry} per entry, then `end`.
 * Joined they are byte for byte {@link encodeSegmentStatus} of the whole status.
 */
export function encodeSegmentStatusParts(s: Omit<SegmentStatus, 'missing'>, hasMissing: boolean): { head: string; end: string } {
  const empty = JSON.stringify(SegmentStatusSchema.parse({ ...s, missing: [] }), null, 2);
  if (!hasMissing) return { head: empty + '\n', end: '' };
  return { head: empty.slice(0, -'[]\n}'.length) + '[\n', end: '\n  ]\n}\n' };
}

/** One entry of the streamed `missing` list (see {@link encodeSegmentStatusParts}). */
export function encodeMissingEntry(m: MissingImage, first: boolean): string {
  return (first ? '' : ',\n') + JSON.stringify(MissingImageSchema.parse(m), null, 2).replace(/^/gm, '    ');
}

/** Decodes and validates; throws with the path on a bad file. */
export function decodeSegmentStatus(text: string, path = '<status>'): SegmentStatus {
  const parsed = SegmentStatusSchema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new Error(`${path}: invalid segment status: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}

/** The status of segment `seg`, or undefined when it is not complete (absent or unreadable). */
export async function readSegmentStatus(workDir: string, seg: number): Promise<SegmentStatus | undefined> {
  const path = segmentStatusPath(workDir, seg);
  try {
    const status = decodeSegmentStatus(await readFile(path, 'utf8'), path);
    return status.seg === seg ? status : undefined;
  } catch {
    return undefined;
  }
}


/**
 * Streams a status file: first its head (every field but `missing`), then the image-missing
 * entries one at a time, so a segment of 100,000 failed images is never held whole. Throws with
 * the path on a file that is not a status.
 * @example for await (const x of streamSegmentStatus(path)) if ('missing' in x) count(x.missing.reason)
 */
export async function* streamSegmentStatus(path: string): AsyncGenerator<{ head: SegmentStatusHead } | { missing: MissingImage }> {
  const head: Record<string, unknown> = {};
  let depth = 0;
  let key: string | undefined;
  let inList = false;
  let sawList = false;
  let asm: Assembler | undefined;
  const file = createReadStream(path);
  const tokens = parser.asStream({ streamValues: false });
  // pipeline (unlike pipe) hands a read error on to the tokens, so the loop below ends with it.
  pipeline(file, tokens, () => undefined);
  try {
    for await (const t of tokens as AsyncIterable<{ name: string; value?: unknown }>) {
      if (asm) {
        asm.consume(t as never);
        if (asm.done) {
          const m = MissingImageSchema.safeParse(asm.current);
          if (!m.success) throw new Error(`${path}: invalid segment status: ${m.error.issues[0]?.message}`);
          yield { missing: m.data };
          asm = undefined;
        }
        continue;
      }
      if (inList) {
        if (t.name === 'endArray') inList = false;
        else (asm = new Assembler()).consume(t as never);
        continue;
      }
      if (t.name === 'startObject') depth++;
      else if (t.name === 'endObject') depth--;
      else if (depth === 1 && t.name === 'keyValue') key = t.value as string;
      else if (depth === 1 && key === 'missing' && t.name === 'startArray') {
        const h = StatusHeadSchema.safeParse(head);
        if (!h.success) throw new Error(`${path}: invalid segment status: ${h.error.issues[0]?.message}`);
        yield { head: h.data };
        inList = sawList = true;
      } else if (depth === 1 && key !== undefined) head[key] = t.name === 'numberValue' ? Number(t.value) : t.value;
    }
  } finally {
    file.destroy();
    tokens.destroy();
  }
  if (!sawList) throw new Error(`${path}: invalid segment status: no missing list`);
}

/**
 * The head of segment `seg`'s status and whether it lists any image-missing item, reading no
 * further than that; undefined when the segment is not complete (absent or unreadable).
 */
export async function readSegmentStatusHead(workDir: string, seg: number): Promise<{ head: SegmentStatusHead; hasMissing: boolean } | undefined> {
  let head: SegmentStatusHead | undefined;
  try {
    for await (const x of streamSegmentStatus(segmentStatusPath(workDir, seg))) {
      if ('head' in x) head = x.head;
      else return head?.seg === seg ? { head, hasMissing: true } : undefined;
    }
  } catch {
    return undefined;
  }
  return head?.seg === seg ? { head, hasMissing: false } : undefined;
}

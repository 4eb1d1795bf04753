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
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '@k3m-kit/core';

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

/** `build-data/segment-<seg>.json` under `workDir`. */
export function segmentStatusPath(workDir: string, seg: number): string {
  return join(workDir, STATUS_DIR, `segment-${seg}.json`);
}

export function encodeSegmentStatus(s: SegmentStatus): string {
  return JSON.stringify(SegmentStatusSchema.parse(s), null, 2) + '\n';
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

export function writeSegmentStatus(workDir: string, s: SegmentStatus): Promise<void> {
  return writeFileAtomic(segmentStatusPath(workDir, s.seg), encodeSegmentStatus(s));
}

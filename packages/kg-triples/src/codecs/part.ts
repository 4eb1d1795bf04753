/**
 * @file Per-segment intermediate files under `kg/parts/` (design.md section 5: shards process
 * their own segments, a merge builds the vocabularies from all of them).
 *
 * For segment `n`: `seg-<n>.triples.tsv` (see triples-tsv.ts), `seg-<n>.knowledge.tsv` (that
 * segment's lines of knowledge.tsv), `seg-<n>.rejects.jsonl` (pairs dropped by cleaning) and,
 * written last, `seg-<n>.json`: the done marker with the segment's statistics. A marker whose
 * `fingerprint` (cleaning options and --max-pairs) or source differs from the current run is
 * stale and the segment is redone.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { STEPS } from '../normalise.ts';
import { SegmentOptionsSchema } from '../options.ts';

export const PARTS_DIR = 'parts';

export function partPaths(kgDir: string, seg: number) {
  const base = join(kgDir, PARTS_DIR, `seg-${seg}`);
  return {
    triples: `${base}.triples.tsv`,
    knowledge: `${base}.knowledge.tsv`,
    rejects: `${base}.rejects.jsonl`,
    marker: `${base}.json`,
  };
}

const Histogram = z.record(z.string(), z.number().int().nonnegative());

export const StepStatsSchema = z.object({
  step: z.enum(STEPS),
  enabled: z.boolean(),
  in: z.number().int().nonnegative(),
  changed: z.number().int().nonnegative(),
  dropped: z.number().int().nonnegative(),
  out: z.number().int().nonnegative(),
});

/** What one segment contributed; the merge sums these. */
export const SegmentStatsSchema = z.object({
  items: z.number().int().nonnegative(),
  /** Items whose pv field was empty in the segment file. */
  itemsWithoutKnowledge: z.number().int().nonnegative(),
  /** Items left with no pair after cleaning (includes the above). */
  itemsEmptyAfterCleaning: z.number().int().nonnegative(),
  pairsIn: z.number().int().nonnegative(),
  pairsOut: z.number().int().nonnegative(),
  steps: z.array(StepStatsSchema),
  rejectedByReason: z.record(z.string(), z.number().int().nonnegative()),
  itemsWithRepeatedProperties: z.number().int().nonnegative(),
  /** Triples whose property already occurred in the same item with another value. */
  repeatedPropertyTriples: z.number().int().nonnegative(),
  /** Items whose knowledge string was cut at --max-pairs, and the pairs cut. */
  itemsTruncated: z.number().int().nonnegative(),
  pairsTruncated: z.number().int().nonnegative(),
  /** pairs per item -> items, before and after cleaning. */
  pairsPerItemIn: Histogram,
  pairsPerItemOut: Histogram,
});
export type SegmentStats = z.infer<typeof SegmentStatsSchema>;

export const PartMarkerSchema = z.object({
  version: z.literal(1),
  fingerprint: z.string(),
  /** The cleaning options and --max-pairs the part was made with. */
  options: SegmentOptionsSchema,
  seg: z.number().int().nonnegative(),
  split: z.enum(['train', 'val']),
  file: z.string(),
  stats: SegmentStatsSchema,
});
export type PartMarker = z.infer<typeof PartMarkerSchema>;

export function encodePartMarker(m: PartMarker): string {
  return JSON.stringify(PartMarkerSchema.parse(m), null, 2) + '\n';
}

/** The marker of segment `seg`, or undefined when absent or unreadable (the segment is redone). */
export async function readPartMarker(kgDir: string, seg: number): Promise<PartMarker | undefined> {
  let text: string;
  try {
    text = await readFile(partPaths(kgDir, seg).marker, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const parsed = PartMarkerSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

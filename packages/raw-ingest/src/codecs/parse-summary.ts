/**
 * @file build-data's parse-pass summary, `build-data/parse.json`, and the parse rejects beside it
 * (`build-data/parse-rejects.jsonl`, one {@link RejectRecord} per line). Both come from the input
 * alone, so every shard writes the same bytes and `merge` can take them from any shard.
 *
 * Layout (JSON, 2-space indent, trailing newline):
 *
 *   { "version": 1,
 *     "inputs": [ { "path": "raw/train.tsv", "split": "train", "records": 400 } ],
 *     "in": 400, "items": 398, "rejectedByReason": { "duplicate-id": 2 },
 *     "malformedPairs": 3, "itemsWithMalformedPairs": 2, "emptyTitle": 1, "emptyKnowledge": 0 }
 *
 * `split` is `train`, `val`, `hash` (split by --val-ratio) or `archive` (TaiSu image archives,
 * whose records are the members that served no item). `in` counts records as the readers read
 * them (blank lines are not records), `items` those that passed validation.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { IoError, writeFileAtomic } from '@k3m-kit/core';
import { STATUS_DIR } from './segment-status.ts';

export const PARSE_SUMMARY_FILE = 'parse.json';
export const PARSE_REJECTS_FILE = 'parse-rejects.jsonl';

export const ParseSummarySchema = z.object({
  version: z.literal(1),
  inputs: z.array(z.object({ path: z.string(), split: z.enum(['train', 'val', 'hash', 'archive']), records: z.number().int().nonnegative() })),
  in: z.number().int().nonnegative(),
  items: z.number().int().nonnegative(),
  rejectedByReason: z.record(z.string(), z.number().int().nonnegative()),
  malformedPairs: z.number().int().nonnegative(),
  itemsWithMalformedPairs: z.number().int().nonnegative(),
  emptyTitle: z.number().int().nonnegative(),
  emptyKnowledge: z.number().int().nonnegative(),
});
export type ParseSummary = z.infer<typeof ParseSummarySchema>;

export function parseSummaryPath(workDir: string): string {
  return join(workDir, STATUS_DIR, PARSE_SUMMARY_FILE);
}

export function parseRejectsPath(workDir: string): string {
  return join(workDir, STATUS_DIR, PARSE_REJECTS_FILE);
}

export function encodeParseSummary(s: ParseSummary): string {
  return JSON.stringify(ParseSummarySchema.parse(s), null, 2) + '\n';
}

export function writeParseSummary(workDir: string, s: ParseSummary): Promise<void> {
  return writeFileAtomic(parseSummaryPath(workDir), encodeParseSummary(s));
}

export async function readParseSummary(workDir: string): Promise<ParseSummary> {
  const path = parseSummaryPath(workDir);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new IoError(path, `${(e as Error).message} (run raw-ingest build-data first)`);
  }
  const parsed = ParseSummarySchema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new IoError(path, `invalid parse summary: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}

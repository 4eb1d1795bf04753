/**
 * @file Per-segment working files of `extract` under `image_features/parts/` (design.md 5:
 * resume and sharding), merged into the K3M-named TSVs once every segment is done:
 *
 *   seg<seg>.tsv            feature rows of the segment in item order (the TSV codec's lines)
 *   rejects/seg<seg>.jsonl  rejected images of the segment, one RejectRecord per line (a
 *                           reject log, committed when the segment ends)
 *   seg<seg>.started.json   the fingerprint the TSV was begun with
 *   seg<seg>.done.json      {@link PartMarker}: written atomically last, so its presence with the
 *                           current fingerprint is what makes a segment done
 *
 * The TSV is appended one whole line per write while a segment runs; a resumed run cuts a torn
 * last line, skips the images already present and runs the rest (rejected ones again: their log
 * was not committed), so the result equals an uninterrupted run. A marker with another
 * fingerprint means other options: redone.
 */
import { existsSync } from 'node:fs';
import { readFile, rm, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '@k3m-kit/core';
import { FEATURE_DIR } from './feature-tsv.ts';

export const PARTS_DIR = 'parts';

export function partPaths(workDir: string, seg: number) {
  const dir = join(workDir, FEATURE_DIR, PARTS_DIR);
  return {
    tsv: join(dir, `seg${seg}.tsv`),
    rejects: join(dir, 'rejects', `seg${seg}.jsonl`),
    started: join(dir, `seg${seg}.started.json`),
    marker: join(dir, `seg${seg}.done.json`),
  };
}

/** The options that decide a part's bytes; equal settings give equal parts. */
export const PartSettingsSchema = z.object({
  preset: z.string(),
  weights: z.string(),
  randomInit: z.boolean(),
  featureDim: z.number().int().positive(),
  numClasses: z.number().int().positive(),
  /** Set only with --attributes (so parts made without it keep their fingerprint). */
  numAttributes: z.number().int().positive().optional(),
  minSize: z.number().int().positive(),
  maxSize: z.number().int().positive(),
  rule: z.string(),
  form: z.enum(['k3m', 'bare']),
  backend: z.string(),
  /**
   * wasm's convolution kernels (`blas` or `xnnpack`): they round differently, so a part made with
   * the other kind is redone rather than mixed into the output.
   */
  kernels: z.enum(['blas', 'xnnpack']).optional(),
});
export type PartSettings = z.infer<typeof PartSettingsSchema>;

export const PartMarkerSchema = z.object({
  fingerprint: z.string(),
  settings: PartSettingsSchema,
  seg: z.number().int().nonnegative(),
  split: z.enum(['train', 'val']),
  file: z.string(),
  /** Items the segment's reader read (the ledger's `in`). */
  items: z.number().int().nonnegative(),
  in: z.number().int().nonnegative(),
  written: z.number().int().nonnegative(),
  rejected: z.number().int().nonnegative(),
  /** Items without an image: skipped, no row. */
  imageMissing: z.number().int().nonnegative(),
  rejectedByReason: z.record(z.string(), z.number()),
});
export type PartMarker = z.infer<typeof PartMarkerSchema>;

export function fingerprintOf(s: PartSettings): string {
  return JSON.stringify(PartSettingsSchema.parse(s));
}

/** The segment's marker, or undefined when absent or unreadable (the segment is then redone). */
export async function readMarker(workDir: string, seg: number): Promise<PartMarker | undefined> {
  const p = partPaths(workDir, seg).marker;
  if (!existsSync(p)) return undefined;
  try {
    return PartMarkerSchema.parse(JSON.parse(await readFile(p, 'utf8')));
  } catch {
    return undefined;
  }
}

export async function writeMarker(workDir: string, m: PartMarker): Promise<void> {
  await writeFileAtomic(partPaths(workDir, m.seg).marker, JSON.stringify(PartMarkerSchema.parse(m), null, 2) + '\n');
}

/** Complete lines of a line file, after cutting a torn last line off the file itself. */
export async function recoverLines(path: string): Promise<string[]> {
  if (!existsSync(path)) return [];
  const text = await readFile(path, 'utf8');
  const end = text.lastIndexOf('\n') + 1;
  if (end !== Buffer.byteLength(text)) await truncate(path, Buffer.byteLength(text.slice(0, end)));
  return text.slice(0, end).split('\n').filter((l) => l !== '');
}

export async function removePart(workDir: string, seg: number): Promise<void> {
  const p = partPaths(workDir, seg);
  await Promise.all([p.marker, p.started, p.tsv, p.rejects].map((f) => rm(f, { force: true })));
}

/**
 * @file The stage's options: one zod schema shared by the API, the CLI flags and `--config`
 * files, so every entry point checks the same rules and names the same option on error.
 */
import { z } from 'zod';
import { DEFAULT_NORMALISE, type NormaliseOptions } from './normalise.ts';

const Placeholders = z.preprocess(
  (v) => (typeof v === 'string' ? v.split(',').filter((s) => s !== '') : v),
  z.array(z.string()),
);

/** Options of the merge: vocabulary thresholds and the held-out split. */
export const MergeOptionsSchema = z.object({
  minRelationFreq: z.number().int().min(1).default(1),
  minEntityFreq: z.number().int().min(1).default(1),
  /** Share of triples held out (half valid, half test). */
  holdoutRatio: z.number().min(0).max(0.5).default(0.1),
  /** Salt of the held-out hash. */
  seed: z.number().int().min(0).default(0),
});
export type MergeOptions = z.infer<typeof MergeOptionsSchema>;

/** Options of the per-segment pass: cleaning switches and the knowledge-string cap. */
export const SegmentOptionsSchema = z.object({
  maxPairs: z.number().int().min(1).default(10),
  nfkc: z.boolean().default(DEFAULT_NORMALISE.nfkc),
  whitespace: z.boolean().default(DEFAULT_NORMALISE.whitespace),
  dropEmpty: z.boolean().default(DEFAULT_NORMALISE.dropEmpty),
  dropPlaceholders: z.boolean().default(DEFAULT_NORMALISE.dropPlaceholders),
  placeholders: Placeholders.default([...DEFAULT_NORMALISE.placeholders]),
  rewriteSeparators: z.boolean().default(DEFAULT_NORMALISE.rewriteSeparators),
  dedupe: z.boolean().default(DEFAULT_NORMALISE.dedupe),
});
export type SegmentOptions = z.infer<typeof SegmentOptionsSchema>;

/** Everything `build` takes besides the work dir and shard. */
export const BuildOptionsSchema = SegmentOptionsSchema.extend(MergeOptionsSchema.shape);
export type KgOptions = z.infer<typeof BuildOptionsSchema>;

/** Keys the common CLI options add; allowed in config files too. */
const Common = {
  workDir: z.string().min(1),
  config: z.string().optional(),
  shard: z.string().optional(),
  numShards: z.number().int().min(1).optional(),
  quiet: z.boolean().optional(),
  json: z.boolean().optional(),
};

/** CLI/config schema of `kg-triples build`; unknown keys are errors. */
export const BuildCliSchema = z.strictObject({ ...BuildOptionsSchema.shape, ...Common });
/** CLI/config schema of `kg-triples merge`. */
export const MergeCliSchema = z.strictObject({ ...MergeOptionsSchema.shape, ...Common });

export function normaliseOptionsOf(o: SegmentOptions): NormaliseOptions {
  return {
    nfkc: o.nfkc,
    whitespace: o.whitespace,
    dropEmpty: o.dropEmpty,
    dropPlaceholders: o.dropPlaceholders,
    placeholders: o.placeholders,
    rewriteSeparators: o.rewriteSeparators,
    dedupe: o.dedupe,
  };
}

/** Fills defaults and validates; throws zod's error on bad values (the CLI maps it to exit 2). */
export function resolveOptions(partial: Partial<KgOptions> = {}): KgOptions {
  return BuildOptionsSchema.parse(partial);
}

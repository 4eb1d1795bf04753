/**
 * @file build-data's configuration: one zod schema for flags and config files alike, its
 * defaults, and the registry of missing-image policies.
 */
import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { enumOf, WHOLE } from '@k3m-kit/core';
import { FORMATS } from './sources/formats.ts';
import { CAPTION_CHOICES, InputSchema, parseInputSpec } from './sources/source.ts';

/** What happens to an item whose image cannot be fetched or decoded. */
export const MISSING_IMAGE_POLICIES = Object.freeze({
  keep: 'keep the item with an empty pic field (image-missing); the reason goes to its segment status',
  drop: 'drop the item and count it as rejected (reason image-missing), as the reference does',
});
export type MissingImagePolicy = keyof typeof MISSING_IMAGE_POLICIES;

/**
 * sharp decodes in flight by default: two per core, so every core has one running and one
 * queued while the JS thread fetches and writes. The CLI sizes libuv's thread pool to match
 * (bin/raw-ingest.cjs).
 */
export const DEFAULT_DECODE_CONCURRENCY = 2 * availableParallelism();

const INPUT_REQUIRED = 'at least one --input FILE[:train|:val] is required';
const inputEntry = z.union([z.string().min(1).transform(parseInputSpec), InputSchema]);

export const BuildDataConfigSchema = z.object({
  workDir: z.string().min(1).default('work'),
  input: z.array(inputEntry, { error: INPUT_REQUIRED }).min(1, INPUT_REQUIRED),
  /** The input format; guessed from the inputs' first bytes when not given. */
  format: enumOf(FORMATS).optional(),
  /** TaiSu only: which caption(s) make the text records (default `w`). */
  caption: enumOf(CAPTION_CHOICES).optional(),
  valRatio: z.number().min(0).max(1).optional(),
  segmentSize: z.number().int().min(1).default(100_000),
  concurrency: z.number().int().min(1).max(4096).default(64),
  decodeConcurrency: z.number().int().min(1).max(256).default(DEFAULT_DECODE_CONCURRENCY),
  timeoutMs: z.number().int().min(1).default(15_000),
  maxRedirects: z.number().int().min(0).max(50).default(5),
  maxBytes: z.number().int().min(1).default(20 * 1024 * 1024),
  retries: z.number().int().min(0).max(20).default(2),
  backoffMs: z.number().int().min(0).default(250),
  maxPixels: z.number().int().min(1).default(50_000_000),
  maxSide: z.number().int().min(1).optional(),
  minSide: z.number().int().min(1).optional(),
  jpegQuality: z.number().int().min(1).max(100).default(90),
  missingImage: enumOf(MISSING_IMAGE_POLICIES).default('keep'),
  retryFailed: z.boolean().default(false),
  shard: z
    .object({ index: z.number().int().min(0), count: z.number().int().min(1) })
    .refine((s) => s.index < s.count, 'i must be below N')
    .default(WHOLE),
  quiet: z.boolean().default(true),
});

/** What `buildData` accepts: defaults filled in by the schema. */
export type BuildDataConfigInput = z.input<typeof BuildDataConfigSchema>;
export type BuildDataConfig = z.output<typeof BuildDataConfigSchema>;

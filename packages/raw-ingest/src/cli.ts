/**
 * @file The `raw-ingest` command line: `build-data` and `merge`, a thin skin over
 * {@link buildData} and {@link mergeBuildData}. Flags and `--config` are merged and validated by
 * one zod schema; the report is printed as a table or, with `--json`, as JSON.
 */
import { Command, Option } from 'commander';
import { z } from 'zod';
import { buildData } from './build-data.ts';
import { BuildDataConfigSchema, DEFAULT_DECODE_CONCURRENCY, MISSING_IMAGE_POLICIES } from './config.ts';
import { FORMATS } from './sources/formats.ts';
import { CAPTION_CHOICES } from './sources/source.ts';
import { mergeBuildData, reportTable } from './finalize.ts';
import {
  addCommonOptions,
  floatArg,
  intArg,
  loadConfig,
  resolveCommon,
  runCli,
  printReport,
} from '@k3m-kit/core';

/** Flags as commander hands them over: the shard is still text, resolved after validation. */
const CliSchema = BuildDataConfigSchema.omit({ shard: true }).extend({
  shard: z.string().optional(),
  numShards: z.number().int().min(1).optional(),
  quiet: z.boolean().default(false),
  json: z.boolean().default(false),
});

const collect = (v: string, prev: string[] = []) => [...prev, v];

const program = new Command()
  .description('Raw product data (K3M TSV, P9D, Product1M, TaiSu) to K3M-compatible segment files, verified images, CSV and JSON.');
const listing = (registry: Record<string, string>) => Object.entries(registry).map(([k, v]) => `${k} = ${v}`).join('; ');

const buildCmd = addCommonOptions(
  program
    .command('build-data')
    .description(
      'Validate and segment raw items (K3M TSV, P9D JSON, Product1M text, TaiSu captions + archives), fetch and verify every ' +
        'image, write segments, image/, image_lmdb_json/ tables, reports/build-data.json and rejects/build-data.jsonl.',
    )
    .option('--input <file[:train|:val]>', 'an input file and its split role (repeatable); no role = train, or hash split with --val-ratio; TaiSu: the captions JSON and each archive', collect)
    .addOption(new Option('--format <name>', `input format, told from the files when not given: ${listing(FORMATS)}`).choices(Object.keys(FORMATS)))
    .addOption(new Option('--caption <which>', `TaiSu: ${listing(CAPTION_CHOICES)} (default w)`).choices(Object.keys(CAPTION_CHOICES)))
    .addOption(new Option('--val-ratio <r>', 'send this fraction of the items of role-less inputs to val, by a stable hash of the item id').argParser(floatArg('--val-ratio', 0, 1)))
    .addOption(new Option('--segment-size <n>', 'items per segment (the unit of resume and sharding)').default(100_000).argParser(intArg('--segment-size', 1)))
    .addOption(new Option('--concurrency <n>', 'images in flight (fetch + verify + write)').default(64).argParser(intArg('--concurrency', 1)))
    .addOption(new Option('--decode-concurrency <n>', 'sharp decodes in flight (2 per core)').default(DEFAULT_DECODE_CONCURRENCY).argParser(intArg('--decode-concurrency', 1)))
    .addOption(new Option('--timeout-ms <ms>', 'per-attempt timeout over connect, headers and body').default(15_000).argParser(intArg('--timeout-ms', 1)))
    .addOption(new Option('--max-redirects <n>', 'redirects followed per image').default(5).argParser(intArg('--max-redirects', 0)))
    .addOption(new Option('--max-bytes <n>', 'largest image body accepted').default(20 * 1024 * 1024).argParser(intArg('--max-bytes', 1)))
    .addOption(new Option('--retries <n>', 'retries after 5xx, resets, truncated transfers and timeouts (never 4xx or DNS)').default(2).argParser(intArg('--retries', 0)))
    .addOption(new Option('--backoff-ms <ms>', 'first retry delay, doubled per retry').default(250).argParser(intArg('--backoff-ms', 0)))
    .addOption(new Option('--max-pixels <n>', 'images with more pixels are rejected before decoding').default(50_000_000).argParser(intArg('--max-pixels', 1)))
    .addOption(new Option('--min-side <px>', 'resize so the shorter side is this (never enlarges)').argParser(intArg('--min-side', 1)))
    .addOption(new Option('--max-side <px>', 'resize so the longer side is at most this (never enlarges)').argParser(intArg('--max-side', 1)))
    .addOption(new Option('--jpeg-quality <q>', 'quality when an image is re-encoded').default(90).argParser(intArg('--jpeg-quality', 1)))
    .addOption(new Option('--missing-image <policy>', `items whose image fails: ${listing(MISSING_IMAGE_POLICIES)}`).choices(Object.keys(MISSING_IMAGE_POLICIES)).default('keep'))
    .option('--retry-failed', 're-attempt the images that failed in complete segments (others are skipped)', false),
);

buildCmd.action(async () => {
  const opts = await loadConfig(CliSchema, buildCmd, buildCmd.opts().config as string | undefined);
  const common = resolveCommon(opts);
  const { shard: _s, numShards: _n, json: _j, ...rest } = opts;
  const { report } = await buildData({ ...rest, shard: common.shard, quiet: common.quiet });
  printReport(report, reportTable(report), common);
  if (!report.reconciles) throw new Error('report does not reconcile (in != written + rejected): this is a bug');
});

const mergeCmd = program
  .command('merge')
  .description('After all shards of build-data ran: write image_lmdb_json/ tables, reports/build-data.json and rejects/build-data.jsonl.')
  .option('--work-dir <dir>', 'work directory the shards wrote', 'work')
  .option('--quiet', 'no table', false)
  .option('--json', 'print the final report as JSON on stdout', false);

mergeCmd.action(async () => {
  const o = mergeCmd.opts() as { workDir: string; quiet: boolean; json: boolean };
  const { report } = await mergeBuildData(o.workDir);
  printReport(report, reportTable(report), o);
});

await runCli('raw-ingest', program);

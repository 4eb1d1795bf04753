/**
 * @file `lmdb-writer convert | merge | verify`: a thin skin over {@link convert}, {@link merge}
 * and {@link verify}.
 */
import { Command, Option } from 'commander';
import { z } from 'zod';
import { addCommonOptions, enumOf, intArg, loadConfig, printReport, resolveCommon, runCli, UsageError } from '@k3m-kit/core';
import { convert, convertTable, defaultWorkers, SPLIT_NAMES } from './convert.ts';
import { MISSING_IMAGE_POLICIES } from './join.ts';
import { merge, mergeTable } from './merge.ts';
import { verify } from './codecs/record-reader.ts';

const SPLIT_CHOICES = Object.freeze({ all: SPLIT_NAMES, train: ['train'], val: ['val'] } as const);

const Common = z.object({
  workDir: z.string().min(1),
  config: z.string().optional(),
  shard: z.string().optional(),
  numShards: z.number().int().positive().optional(),
  quiet: z.boolean(),
  json: z.boolean(),
  split: enumOf(SPLIT_CHOICES),
  batchRecords: z.number().int().positive(),
});

const ConvertConfig = Common.extend({
  missingImage: enumOf(MISSING_IMAGE_POLICIES),
  fp16: z.boolean(),
  clsProb: z.boolean(),
  batchMb: z.number().int().positive(),
  verifySample: z.number().int().nonnegative(),
  workers: z.number().int().nonnegative(),
});

function withSplitAndBatch(cmd: Command): Command {
  return cmd
    .addOption(new Option('--split <split>', 'which split(s)').choices(Object.keys(SPLIT_CHOICES)).default('all'))
    .addOption(new Option('--batch-records <n>', 'commit (and make resumable) every n records').argParser(intArg('--batch-records', 1)).default(1000));
}

const program = new Command().description('Training records in tensorpack-layout LMDB that tensorpack and our trainer both read.');

withSplitAndBatch(
  addCommonOptions(
    program
      .command('convert')
      .description('join region features, item metadata and knowledge into image_lmdb_json/*_feat_all.lmdb (or *_feat_part_<i>.lmdb with --shard)'),
  ),
)
  .addOption(new Option('--missing-image <policy>', 'items without features: keep (num_boxes "0") or drop').choices(Object.keys(MISSING_IMAGE_POLICIES)).default('keep'))
  .option('--fp16', 'store features and cls_prob as float16 (half the size; the original loader cannot read it)', false)
  .option('--no-cls-prob', 'store cls_prob as shape (num_boxes, 0): about two thirds smaller')
  .addOption(new Option('--batch-mb <mb>', 'commit at least every mb megabytes of values').argParser(intArg('--batch-mb', 1)).default(256))
  .addOption(new Option('--verify-sample <n>', 'records read back and compared at the end').argParser(intArg('--verify-sample')).default(32))
  .addOption(new Option('--workers <n>', 'threads decoding feature rows (0: the main thread)').argParser(intArg('--workers')).default(defaultWorkers(), '0 on 2 cores or fewer, else cores - 1'))
  .action(async (_opts, cmd: Command) => {
    const cfg = await loadConfig(ConvertConfig, cmd, cmd.opts().config as string | undefined);
    const common = resolveCommon(cfg);
    const report = await convert({
      workDir: common.workDir,
      splits: SPLIT_CHOICES[cfg.split],
      shard: common.shard,
      missingImage: cfg.missingImage,
      fp16: cfg.fp16,
      clsProb: cfg.clsProb,
      batchRecords: cfg.batchRecords,
      batchMb: cfg.batchMb,
      verifySample: cfg.verifySample,
      workers: cfg.workers,
      quiet: common.quiet,
    });
    printReport(report, convertTable(report), common);
  });

withSplitAndBatch(addCommonOptions(program.command('merge').description('merge *_feat_part_<i>.lmdb (shards 0..N-1) into *_feat_all.lmdb, in single-run order')))
  .action(async (_opts, cmd: Command) => {
    const cfg = await loadConfig(Common, cmd, cmd.opts().config as string | undefined);
    if (cfg.shard) throw new UsageError('--shard: merge runs once over all shards; give --num-shards N or nothing');
    const report = await merge({
      workDir: cfg.workDir,
      numShards: cfg.numShards,
      splits: SPLIT_CHOICES[cfg.split],
      batchRecords: cfg.batchRecords,
      quiet: cfg.quiet || !process.stderr.isTTY,
    });
    printReport(report, mergeTable(report), cfg);
  });

program
  .command('verify')
  .description('check a tensorpack-layout LMDB: __keys__, entry count, and a sample of records decode')
  .argument('<lmdb>', 'path of the .lmdb file')
  .addOption(new Option('--sample <n>', 'records to decode').argParser(intArg('--sample')).default(64))
  .option('--json', 'print the result as JSON', false)
  .action((path: string, opts: { sample: number; json: boolean }) => {
    const r = verify(path, { sample: opts.sample });
    process.stdout.write(opts.json ? JSON.stringify(r, null, 2) + '\n' : `${r.path}: ${r.records} records, ${r.checked} decoded, ${r.problems.length ? r.problems.join('\n') : 'ok'}\n`);
    if (r.problems.length) process.exitCode = 1;
  });

await runCli('lmdb-writer', program);

/**
 * @file The `kg-triples` command line: a thin skin over `build` and `merge` (src/index.ts).
 * Flags, `--config` files and defaults go through one zod schema (options.ts).
 */
import { Command, Option } from 'commander';
import {
  addCommonOptions,
  floatArg,
  intArg,
  loadConfig,
  printReport,
  resolveCommon,
  runCli,
  type CommonFlags,
} from '@k3m-kit/core';
import { build } from './build.ts';
import { merge } from './merge.ts';
import { DEFAULT_PLACEHOLDERS } from './normalise.ts';
import { BuildCliSchema, MergeCliSchema } from './options.ts';
import { reportTable, shardReportTable } from './report.ts';

function addMergeOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--min-relation-freq <n>', 'keep properties seen at least n times').argParser(intArg('--min-relation-freq', 1)))
    .addOption(new Option('--min-entity-freq <n>', 'keep values seen at least n times').argParser(intArg('--min-entity-freq', 1)))
    .addOption(new Option('--holdout-ratio <r>', 'share of triples held out for valid + test (default 0.1)').argParser(floatArg('--holdout-ratio', 0, 0.5)))
    .addOption(new Option('--seed <n>', 'salt of the held-out hash (default 0)').argParser(intArg('--seed')));
}

const program = new Command()
  .description('Property-value knowledge to clean triples, OpenKE vocabularies and per-item knowledge strings.');

addMergeOptions(
  addCommonOptions(
    program
      .command('build')
      .description('clean this shard\'s segments into kg/parts/, then merge when every segment is done')
      .addOption(new Option('--max-pairs <n>', 'pairs kept in each knowledge string (default 10)').argParser(intArg('--max-pairs', 1)))
      .option('--placeholders <list>', `comma-separated placeholder values to drop (default ${DEFAULT_PLACEHOLDERS.join(',')})`)
      .option('--no-nfkc', 'skip Unicode NFKC')
      .option('--no-whitespace', 'skip trimming and collapsing white space')
      .option('--no-drop-empty', 'keep pairs with an empty property or value')
      .option('--no-drop-placeholders', 'keep placeholder values')
      .option('--no-rewrite-separators', 'drop pairs containing : ; # instead of rewriting them to full-width')
      .option('--no-dedupe', 'keep exact duplicate pairs within an item'),
  ),
).action(async (_flags: CommonFlags, cmd: Command) => {
  const o = await loadConfig(BuildCliSchema, cmd, cmd.opts<CommonFlags>().config);
  const common = resolveCommon(o as CommonFlags);
  const { workDir: _w, config: _c, shard: _s, numShards: _n, quiet: _q, json: _j, ...options } = o;
  const report = await build({ ...options, workDir: common.workDir, shard: common.shard, quiet: common.quiet });
  printReport(report, report.merged ? reportTable(report) : shardReportTable(report), common);
});

addMergeOptions(
  addCommonOptions(program.command('merge').description('build the vocabularies and kg/ files from every segment\'s parts')),
).action(async (_flags: CommonFlags, cmd: Command) => {
  const o = await loadConfig(MergeCliSchema, cmd, cmd.opts<CommonFlags>().config);
  const common = resolveCommon(o as CommonFlags);
  const report = await merge(common.workDir, { ...o, quiet: common.quiet });
  printReport(report, reportTable(report), common);
});

await runCli('kg-triples', program);

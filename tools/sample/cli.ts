/**
 * @file `make-sample`: the command line over {@link makeSample}.
 *
 *   node tools/bin/make-sample.js --out work/raw [--seed N] [--train N] [--valid N] [--json]
 */
import { Command, Option } from 'commander';
import { formatTable, intArg, printReport, runCli } from '@k3m-kit/core';
import { FAULT_KIND_NAMES } from './faults.ts';
import { SAMPLE_DEFAULTS, makeSample } from './generate.ts';

const program = new Command()
  .description('Write the embedded sample: a synthetic raw catalogue (train.tsv, valid.tsv, images/) with planted faults listed in faults.json')
  .requiredOption('--out <dir>', 'output directory (its images/ is replaced)')
  .addOption(new Option('--seed <n>', 'random seed; the same seed gives the same bytes').argParser(intArg('--seed')).default(SAMPLE_DEFAULTS.seed))
  .addOption(new Option('--train <n>', 'lines in train.tsv').argParser(intArg('--train', 1)).default(SAMPLE_DEFAULTS.train))
  .addOption(new Option('--valid <n>', 'lines in valid.tsv').argParser(intArg('--valid', 1)).default(SAMPLE_DEFAULTS.valid))
  .option('--quiet', 'print nothing', false)
  .option('--json', 'print faults.json on stdout', false)
  .action(async (opts: { out: string; seed: number; train: number; valid: number; quiet: boolean; json: boolean }) => {
    const started = performance.now();
    const summary = await makeSample(opts);
    const seconds = (performance.now() - started) / 1000;
    const e = summary.expected;
    const table = formatTable(`make-sample ${opts.out}`, [
      ['seed', summary.seed],
      ...summary.files.map((f) => [f.file, f.lines] as const),
      ['images ok', e.imageOk],
      ...FAULT_KIND_NAMES.map((k) => [k, summary.counts[k]] as const),
      ['seconds', seconds],
    ]);
    printReport(summary, table, opts);
  });

await runCli('make-sample', program);

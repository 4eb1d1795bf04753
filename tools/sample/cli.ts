/**
 * @file `make-sample`: the command line over {@link makeSample} (K3M raw TSV) and
 * {@link makeFormatSample} (P9D, Product1M, TaiSu).
 *
 *   node tools/bin/make-sample.js --out work/raw [--format k3m|p9d|product1m|taisu] [--seed N] [--train N] [--valid N] [--json]
 */
import { Command, Option } from 'commander';
import { formatTable, intArg, printReport, runCli } from '@k3m-kit/core';
import { FAULT_KIND_NAMES } from './faults.ts';
import { FORMAT_SAMPLE_DEFAULTS, SAMPLE_FORMATS, makeFormatSample, type SampleFormat } from './formats.ts';
import { SAMPLE_DEFAULTS, makeSample } from './generate.ts';

const program = new Command()
  .description('Write the embedded sample: a synthetic raw catalogue (train.tsv, valid.tsv, images/) with planted faults listed in faults.json')
  .requiredOption('--out <dir>', 'output directory (its images/ is replaced)')
  .addOption(new Option('--format <name>', 'layout of the sample: the K3M raw TSV, or the items in P9D, Product1M or TaiSu layout').choices(['k3m', ...SAMPLE_FORMATS]).default('k3m'))
  .addOption(new Option('--seed <n>', 'random seed; the same seed gives the same bytes').argParser(intArg('--seed')).default(SAMPLE_DEFAULTS.seed))
  .addOption(new Option('--train <n>', `lines in train.tsv (default ${SAMPLE_DEFAULTS.train}); items of the train role for other formats (default ${FORMAT_SAMPLE_DEFAULTS.train})`).argParser(intArg('--train', 1)))
  .addOption(new Option('--valid <n>', `lines in valid.tsv (default ${SAMPLE_DEFAULTS.valid}); items of the val role for other formats (default ${FORMAT_SAMPLE_DEFAULTS.valid})`).argParser(intArg('--valid', 1)))
  .option('--quiet', 'print nothing', false)
  .option('--json', 'print faults.json on stdout', false)
  .action(async (opts: { out: string; format: 'k3m' | SampleFormat; seed: number; train?: number; valid?: number; quiet: boolean; json: boolean }) => {
    const started = performance.now();
    if (opts.format !== 'k3m') {
      const summary = await makeFormatSample({ ...opts, format: opts.format });
      const byEffect = (e: string) => summary.faults.filter((f) => f.effect === e).length;
      const table = formatTable(`make-sample --format ${opts.format} ${opts.out}`, [
        ['seed', summary.seed],
        ...summary.inputs.map((i) => [i.file, i.role ?? ''] as const),
        ['planted: rejected', byEffect('rejected')],
        ['planted: image-missing', byEffect('image-missing')],
        ['planted: kept', byEffect('kept')],
        ['seconds', (performance.now() - started) / 1000],
      ]);
      printReport(summary, table, opts);
      return;
    }
    const summary = await makeSample({ ...opts, train: opts.train ?? SAMPLE_DEFAULTS.train, valid: opts.valid ?? SAMPLE_DEFAULTS.valid });
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

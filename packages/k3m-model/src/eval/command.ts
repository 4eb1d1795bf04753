/**
 * @file `k3m-model evaluate`: a thin skin over {@link evaluate}. `addEvaluateCommand(program)`
 * adds the subcommand to the package's commander program.
 */
import { Command, Option } from 'commander';
import { z } from 'zod';
import { addCommonOptions, floatArg, formatTable, intArg, loadConfig, printReport, resolveCommon, UsageError, type TableRow } from '@k3m-kit/core';
import { CORRUPTION_KINDS } from './grid.ts';
import { DEFAULT_SHRINKAGES, EVAL_TASKS, EvaluateConfigSchema } from './config.ts';
import { evaluate } from './evaluate.ts';
import type { EvaluateReport } from './report.ts';

const list = (v: string) => v.split(',').map((s) => s.trim()).filter(Boolean);

/** `--rates 0,20,50` are percentages. */
function ratesArg(v: string): number[] {
  return list(v).map((s) => {
    const n = Number(s);
    if (!Number.isFinite(n) || n < 0 || n > 100) throw new UsageError(`--rates ${v}: expected percentages in [0, 100], comma-separated`);
    return n / 100;
  });
}

const CliSchema = EvaluateConfigSchema.extend({
  task: EvaluateConfigSchema.shape.tasks,
  config: z.string().optional(),
  shard: z.string().optional(),
  numShards: z.number().int().positive().optional(),
  json: z.boolean().default(false),
});

/** The readable summary: where the results are and the headline cells for both models. */
export function evaluateTable(r: EvaluateReport): string {
  const rows: TableRow[] = [
    ['results', r.evalDir],
    ['backend', r.backend],
    ['items in', r.in],
    ['items usable', r.written],
    ['rejected', r.rejected],
  ];
  const pct = (v: number | null | undefined) => (v === null || v === undefined ? '–' : `${(v * 100).toFixed(1)}`);
  for (const [cell, metric] of [
    ['clean', 'classification.accuracy'],
    ['missing-title@100', 'classification.accuracy'],
    ['clean', 'title-to-image.rank@10'],
    ['noisy-title-image@100', 'title-to-image.rank@10'],
    ['clean', 'completion.hits@10'],
    ['clean', 'instance.mAP@10'],
  ] as const) {
    const c = r.results.cells.find((x) => x.id === cell);
    if (!c || c.values['with-knowledge'][metric] === undefined) continue;
    rows.push([`${metric} ${cell} (w/ K | w/o K)`, `${pct(c.values['with-knowledge'][metric])} | ${pct(c.values['without-knowledge'][metric])}`]);
  }
  rows.push(['seconds', r.seconds]);
  return formatTable('k3m-model evaluate', rows);
}

/** `0.1,0.5,1` -> numbers, each in (0, 1]. */
function shrinkagesArg(v: string): number[] {
  return v.split(',').map((x) => floatArg('--projection-shrinkages', 1e-6, 1)(x.trim()));
}

/**
 * Adds `evaluate` to `program`.
 * @example addEvaluateCommand(new Command()); // then `k3m-model evaluate --work-dir work`
 */
export function addEvaluateCommand(program: Command): Command {
  return addCommonOptions(
    program
      .command('evaluate')
      .description(
        'robustness table: item classification, cross-modal retrieval, knowledge completion and instance-level retrieval under missing/noisy title, image and knowledge, for the model pretrained with knowledge (--run) and without it (--baseline); writes runs/<run>/eval/',
      ),
  )
    .option('--run <name>', 'run pretrained with knowledge (runs/<name>/); results go to runs/<name>/eval/', 'k3m-small')
    .option('--baseline <name>', 'run pretrained with --modalities title,image, same budget and seed', 'k3m-small-noknow')
    .option('--out-dir <dir>', 'where results go (default: <work-dir>/runs/<run>/eval)')
    .addOption(new Option('--seed <n>', 'seed of every split, corruption and probe').argParser(intArg('--seed')).default(42))
    .addOption(
      new Option('--tasks <list>', `comma-separated: ${Object.keys(EVAL_TASKS).join(', ')} (default: every task the work directory has data for)`).argParser(list),
    )
    .addOption(new Option('--task <name>', 'one task, e.g. --task instance-retrieval (same as --tasks <name>)').argParser(list).conflicts('tasks'))
    .addOption(new Option('--kinds <list>', `corruption kinds, comma-separated: ${Object.keys(CORRUPTION_KINDS).join(', ')}`).argParser(list))
    .addOption(new Option('--rates <list>', 'corruption rates in percent, comma-separated (default 0,20,50,80,100)').argParser(ratesArg))
    .addOption(new Option('--max-fit-items <n>', 'seeded cap on the items probes are fitted on (0 = all)').argParser(intArg('--max-fit-items')).default(0))
    .addOption(new Option('--max-eval-items <n>', 'seeded cap on evaluation items = retrieval gallery (0 = all)').argParser(intArg('--max-eval-items')).default(0))
    .addOption(new Option('--fit-corruption <share>', 'share of the fit items probes see corrupted (one grid kind each); 0 = clean only').argParser(floatArg('--fit-corruption', 0, 1)).default(0.5))
    .addOption(new Option('--probe-steps <n>', 'Adam steps of every probe').argParser(intArg('--probe-steps', 1)).default(300))
    .addOption(new Option('--probe-batch <n>', 'probe mini-batch rows (0 = full batch)').argParser(intArg('--probe-batch')).default(128))
    .addOption(new Option('--probe-lr <lr>', 'probe learning rate').argParser(floatArg('--probe-lr', 1e-6, 10)).default(0.003))
    .addOption(new Option('--probe-weight-decay <x>', 'L2 penalty on probe weights').argParser(floatArg('--probe-weight-decay', 0)).default(0.05))
    .addOption(
      new Option('--projection-shrinkages <list>', "covariance shrinkages the retrieval projection's CCA chooses from on 20% held-out fit pairs, comma-separated, each in (0, 1]")
        .argParser(shrinkagesArg)
        .default([...DEFAULT_SHRINKAGES]),
    )
    .addOption(new Option('--projection-dim <n>', 'retrieval projection width').argParser(intArg('--projection-dim', 1)).default(64))
    .addOption(new Option('--workers <n>', 'processes: 2 evaluates both models side by side, 1 one after the other').argParser(intArg('--workers', 1)).default(2))
    .addOption(new Option('--batch-size <n>', 'records per forward pass').argParser(intArg('--batch-size', 1)).default(32))
    .option('--backend <name>', 'tensorflow-gpu, tensorflow, wasm or cpu (default: first that loads)')
    .action(async (_opts, cmd: Command) => {
      const cfg = await loadConfig(CliSchema, cmd, cmd.opts().config as string | undefined);
      if (cfg.shard || cfg.numShards) throw new UsageError('--shard: evaluate runs as one unit (it is not sharded)');
      const common = resolveCommon(cfg);
      const report = await evaluate({ ...cfg, tasks: cfg.tasks ?? cfg.task, workDir: common.workDir, quiet: common.quiet });
      printReport(report, evaluateTable(report), common);
    });
}

/**
 * @file `region-features`: `extract` (the nx target), `merge` (after sharded runs) and
 * `convert-weights` (detectron2 pickle to safetensors).
 */
import { Command, Option } from 'commander';
import { z } from 'zod';
import {
  CommonFlagsSchema,
  EXIT,
  UsageError,
  addCommonOptions,
  enumOf,
  formatTable,
  intArg,
  loadConfig,
  printReport,
  resolveCommon,
  runCli,
  type CommonFlags,
  type TableRow,
} from '@k3m-kit/core';
import { BACKENDS } from '@k3m-kit/core/backend';
import { TSV_FORMS } from './codecs/feature-tsv.ts';
import { defaultWorkers, extract, InterruptedError, merge, reportTable, type ExtractReport } from './extract.ts';
import { SELECTION_RULES } from './model/boxes.ts';
import { IMAGE_SIZES, PRESETS } from './model/presets.ts';
import { convertWeights, DEFAULT_SEED } from './weights.ts';

const ExtractConfig = z.object({
  workDir: z.string(),
  shard: z.string().optional(),
  numShards: z.number().int().positive().optional(),
  quiet: z.boolean(),
  json: z.boolean(),
  config: z.string().optional(),
  preset: enumOf(PRESETS),
  weights: z.string().optional(),
  seed: z.number().int().nonnegative(),
  imageSize: enumOf(IMAGE_SIZES).optional(),
  rule: enumOf(SELECTION_RULES),
  form: enumOf(TSV_FORMS),
  backend: enumOf(BACKENDS).optional(),
  prefetch: z.number().int().positive(),
  workers: z.number().int().positive(),
  attributes: z.boolean(),
});

const program = new Command().description('Faster R-CNN region features (bottom-up-attention, ResNet C4) to the K3M TSV');

const ext = addCommonOptions(
  program
    .command('extract')
    .description("run this shard's segments through the detector into image_features/parts/, then merge when every segment is done"),
)
  .addOption(new Option('--preset <name>', 'detector preset').choices(Object.keys(PRESETS)).default('small-c4-2048'))
  .option('--weights <file>', 'converted .safetensors (or a detectron2 .pkl); without it the small presets run on random weights')
  .addOption(new Option('--seed <n>', 'seed of the random initialisation').argParser(intArg('--seed')).default(DEFAULT_SEED))
  .addOption(new Option('--image-size <s>', 'shorter/longer side: 800 (800/1333, as K3M ran) or 600 (600/1000); default: the preset\'s').choices(Object.keys(IMAGE_SIZES)))
  .addOption(new Option('--rule <r>', 'box selection: k3m (NMS 0.5..0.9 until 36) or adaptive (10-100 boxes, conf 0.2)').choices(Object.keys(SELECTION_RULES)).default('k3m'))
  .addOption(new Option('--form <f>', "TSV cell form: k3m (b'...') or bare base64").choices(Object.keys(TSV_FORMS)).default('k3m'))
  .addOption(new Option('--backend <b>', 'TensorFlow.js back end (default: the first that loads)').choices(Object.keys(BACKENDS)))
  .addOption(new Option('--prefetch <n>', 'images decoded ahead of the workers').argParser(intArg('--prefetch', 1)).default(4))
  .addOption(new Option('--workers <n>', 'detector worker threads, each with its own back end (default: the cores)').argParser(intArg('--workers', 1)).default(defaultWorkers()))
  .option('--attributes', 'add an attr_prob column: 401 attribute probabilities per box (needs faster_rcnn_from_caffe_attr weights)', false);
ext.action(async () => {
  const cfg = await loadConfig(ExtractConfig, ext, ext.opts().config);
  const common = resolveCommon(cfg as CommonFlags);
  const size = cfg.imageSize ? IMAGE_SIZES[cfg.imageSize] : undefined;
  // Ctrl-C stops the workers; the parts stay for a rerun. A second Ctrl-C exits at once.
  const ac = new AbortController();
  const onSignal = () => {
    if (ac.signal.aborted) process.exit(EXIT.interrupted);
    ac.abort();
  };
  process.on('SIGINT', onSignal).on('SIGTERM', onSignal);
  let report: ExtractReport;
  try {
    report = await extract({
      workDir: common.workDir,
      shard: common.shard,
      quiet: common.quiet,
      preset: cfg.preset,
      weights: cfg.weights,
      seed: cfg.seed,
      minSize: size?.minSize,
      maxSize: size?.maxSize,
      rule: cfg.rule,
      form: cfg.form,
      backend: cfg.backend,
      prefetch: cfg.prefetch,
      workers: cfg.workers,
      attributes: cfg.attributes,
      signal: ac.signal,
    });
  } catch (e) {
    if (!(e instanceof InterruptedError)) throw e;
    process.stderr.write(`region-features: interrupted; the segments' parts are kept, rerun the same command to resume\n`);
    process.exitCode = EXIT.interrupted;
    return;
  } finally {
    process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
  }
  finish(report, common);
});

/** Prints the report, the notes a quiet run still owes the user, and fails when it does not reconcile. */
function finish(report: ExtractReport, common: { quiet: boolean; json: boolean }): void {
  printReport(report, reportTable(report), common);
  if (common.quiet && !common.json) {
    if (report.randomInit) process.stderr.write(`note: ${report.note}\n`);
    if (report.widthWarning) process.stderr.write(`WARNING: ${report.widthWarning}\n`);
  }
  if (!report.reconciles) throw new Error('report does not reconcile (in != written + rejected + skipped): this is a bug');
}

const mrg = addCommonOptions(program.command('merge').description('write image_features/{train,dev}.tsv.0 and the report from every segment\'s part'));
mrg.action(async () => {
  const cfg = await loadConfig(CommonFlagsSchema, mrg, mrg.opts().config);
  // merge reads every segment's part; a shard of it would be a partial output.
  if (cfg.shard !== undefined) throw new UsageError(`--shard ${cfg.shard}: merge is not sharded; it reads every segment's part (run it once, without --shard)`);
  if (cfg.numShards !== undefined) throw new UsageError(`--num-shards ${cfg.numShards}: merge is not sharded; it reads every segment's part (run it once, without --num-shards)`);
  const report = await merge(cfg.workDir);
  finish(report, cfg);
});

const conv = program
  .command('convert-weights')
  .description('detectron2 pickle (faster_rcnn_from_caffe.pkl) to safetensors, names and shapes checked against the preset')
  .argument('<pkl>', 'detectron2 checkpoint: {"model": {name: ndarray}} or a flat dict (pickle protocol 2-5)')
  .option('--out <file>', 'output safetensors (default: <pkl without .pkl>.safetensors)')
  .addOption(new Option('--preset <name>', 'preset the weights must fit').choices(Object.keys(PRESETS)).default('bua-r101-c4'))
  .option('--json', 'print the result as JSON', false);
conv.action(async (pkl: string) => {
  const o = conv.opts() as { out?: string; preset: keyof typeof PRESETS; json: boolean };
  const out = o.out ?? pkl.replace(/\.(pkl|pickle)$/, '') + '.safetensors';
  if (out === pkl) throw new UsageError(`--out ${out}: would overwrite the input`);
  let r;
  try {
    r = await convertWeights(pkl, out, o.preset);
  } catch (e) {
    // Both messages start with the file's path.
    const name = (e as Error).name;
    if (name === 'WeightsMismatchError' || name === 'PickleFormatError') throw new UsageError((e as Error).message);
    throw e;
  }
  if (r.unused.length) process.stderr.write(`convert-weights: ${pkl}: ${r.unused.length} names not used by ${o.preset} (not converted): ${r.unused.join(', ')}\n`);
  if (o.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
  else {
    const rows: TableRow[] = [
      ['out', r.out],
      ['tensors', r.tensors],
      ['parameters', r.parameters],
      ['anchors', r.anchors ? 'from the checkpoint buffer' : 'none stored (detectron2 generates them)'],
      ['attribute head', r.attributes],
      ['ignored (bookkeeping)', r.ignored.length],
      ['not used', r.unused.length],
    ];
    process.stdout.write(formatTable('convert-weights', rows) + '\n');
  }
});

await runCli('region-features', program);

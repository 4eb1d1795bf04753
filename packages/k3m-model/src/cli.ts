/**
 * @file `k3m-model`: `pretrain` (the nx target), `build-vocab` and `forward` (parity with a
 * PyTorch run). Thin commander layer over the library API; `--config` JSON files merge under
 * the flags (a `model` key there holds BERT-style model config overrides).
 */
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { z } from 'zod';
import {
  CommonFlagsSchema,
  Ledger,
  UsageError,
  addCommonOptions,
  addOptions,
  formatTable,
  intArg,
  loadConfig,
  printReport,
  resolveCommon,
  runCli,
  writeFileAtomic,
  writeReport,
  type TableRow,
} from '@k3m-kit/core';
import { BACKENDS, backendLine, startBackend } from './backend.ts';
import { buildVocab, recordTexts, writeVocabFile } from './data/vocab.ts';
import { forwardFiles } from './model/forward-files.ts';
import { DEFAULT_FIXES, ORIGINAL_BEHAVIOUR, type FusionMode } from './model/k3m.ts';
import { PRETRAIN_OPTIONS, PretrainOptionsSchema } from './train/config.ts';
import { pretrain, pretrainStageName } from './train/pretrain.ts';
import { CONTINUAL_OPTIONS, ContinualOptionsSchema } from './train/continual-config.ts';
import { continualPretrain } from './eval/continual.ts';
import { continualReport } from './eval/continual-results.ts';
import { lmdbSource, workDirSources, LMDB_FILES } from './train/records.ts';
import { pipelineSummary, pretrainReport, pretrainTable } from './train/report.ts';
import { addEvaluateCommand } from './eval/command.ts';

const FUSION_MODES = { '0': 0, '1': 1, '2': 2, '3': 3 } as const;

const program = new Command().description('The K3M model in TensorFlow.js: pretraining, evaluation and parity tools');

const pre = addOptions(
  addOptions(addCommonOptions(program.command('pretrain').description('pretrain K3M on <work-dir>/image_lmdb_json/*_feat_all.lmdb into <work-dir>/runs/<name>/ (with --domains: one domain after another, runs/<name>.stage-<i>/)')), PRETRAIN_OPTIONS),
  CONTINUAL_OPTIONS,
);

pre.action(async () => {
  const cfg = await loadConfig(PretrainOptionsSchema.extend(ContinualOptionsSchema.shape).extend(CommonFlagsSchema.shape), pre, pre.opts().config);
  const common = resolveCommon(cfg);
  // One model trains in one process; a shard of the records would be a different model.
  if (common.shard.count > 1) throw new UsageError(`--shard ${common.shard.index}/${common.shard.count}: pretrain is not sharded (run it once)`);
  const backend = await startBackend(cfg.backend);
  if (!common.quiet) process.stderr.write(`${backendLine(backend)}\n`);
  let sources;
  try {
    sources = workDirSources(common.workDir);
  } catch (e) {
    throw new UsageError(`--work-dir ${common.workDir}: no training LMDB at ${LMDB_FILES.train} (run lmdb-writer convert first): ${(e as Error).message}`);
  }
  const config = { ...cfg, workDir: common.workDir, quiet: common.quiet };
  const ac = new AbortController();
  const onSigint = () => ac.abort();
  process.once('SIGINT', onSigint);
  if (cfg.domains) {
    const io = { train: sources.train, validation: sources.validation, backend: backend.name, signal: ac.signal, log: common.quiet ? undefined : (l: string) => process.stderr.write(`${l}\n`) };
    const out = await continualPretrain({ ...config, domains: cfg.domains }, io).finally(() => process.off('SIGINT', onSigint));
    if (out.aborted) {
      process.stderr.write(`k3m-model: interrupted; --resume keeps the finished stages and continues the interrupted one from its last checkpoint\n`);
      process.exitCode = 130;
      return;
    }
    const { report, rows } = continualReport(cfg.name, out.results, out.outDir);
    await writeReport(common.workDir, String(report.stage), report);
    printReport(report, formatTable(`k3m-model pretrain --domains ${cfg.domains.join(',')}`, rows), common);
    if (!report.reconciles) throw new Error('report does not reconcile (in != written + rejected + skipped): this is a bug');
    return;
  }
  for (const flag of ['domainMap', 'skipJoint'] as const) if (cfg[flag]) throw new UsageError(`--${flag === 'domainMap' ? 'domain-map' : 'skip-joint'}: only with --domains`);
  const result = await pretrain(config, {
    train: sources.train,
    validation: sources.validation,
    backend: backend.name,
    signal: ac.signal,
    log: common.quiet ? undefined : (l) => process.stderr.write(`${l}\n`),
  }).finally(() => process.off('SIGINT', onSigint));
  if (result.aborted) {
    process.stderr.write(`k3m-model: interrupted at step ${result.steps}; --resume continues from the last checkpoint\n`);
    process.exitCode = 130;
    return;
  }
  const report = pretrainReport(result, config, { name: backend.name, line: backendLine(backend) }, pretrainStageName(cfg.name));
  await writeReport(common.workDir, pretrainStageName(cfg.name), report);
  await writeFileAtomic(join(result.runDir, 'report.json'), JSON.stringify(report, null, 2) + '\n');
  printReport(report, pretrainTable(report), common);
  if (!report.reconciles) throw new Error('report does not reconcile (in != written + rejected + skipped): this is a bug');
});

const BuildVocabConfig = z.object({
  workDir: z.string(),
  config: z.string().optional(),
  quiet: z.boolean(),
  json: z.boolean(),
  out: z.string().optional(),
  maxSize: z.number().int().positive(),
  minFrequency: z.number().int().positive(),
});
const bv = addCommonOptions(program.command('build-vocab').description('build a WordPiece vocab.txt from the training titles and knowledge'))
  .option('--out <file>', 'where to write it (default <work-dir>/vocab.txt)')
  .addOption(new Option('--max-size <n>', 'vocabulary size bound').argParser(intArg('--max-size', 10)).default(21128))
  .addOption(new Option('--min-frequency <n>', 'occurrences a multi-character word needs').argParser(intArg('--min-frequency', 1)).default(2));
bv.action(async () => {
  const cfg = await loadConfig(BuildVocabConfig, bv, bv.opts().config);
  const common = resolveCommon(cfg);
  const t0 = performance.now();
  const src = lmdbSource(join(common.workDir, LMDB_FILES.train));
  // in: records read from the LMDB; written: records whose title and knowledge the builder took.
  const ledger = new Ledger();
  const read = async function* () {
    for await (const r of src.records()) {
      ledger.read();
      yield r;
    }
  };
  const built = await buildVocab(recordTexts(read(), () => ledger.wrote()), { maxSize: cfg.maxSize, minFrequency: cfg.minFrequency });
  const out = cfg.out ?? join(common.workDir, 'vocab.txt');
  await writeVocabFile(out, built.tokens);
  const report = { stage: 'k3m-model-build-vocab', ...ledger.counts(), seconds: (performance.now() - t0) / 1000, out, size: built.tokens.length, ...built.stats };
  await writeReport(common.workDir, 'k3m-model-build-vocab', report);
  printReport(report, formatTable('k3m-model build-vocab', [['records read', report.in], ['records used', report.written], ['tokens', built.tokens.length], ['characters', built.stats.chars], ['whole words', built.stats.wholeWords], ['written to', out]]), common);
});

const fw = program
  .command('forward')
  .description('run one batch given as tensors through the model (evaluation mode, no dropout) and write losses and intermediates under the golden names')
  .requiredOption('--config <file>', "model config JSON (ours or the original's BERT-style file)")
  .requiredOption('--weights <file>', 'state dict safetensors with the original parameter names')
  .requiredOption('--inputs <file>', 'batch tensors named as k3m-golden/inputs.safetensors')
  .requiredOption('--out <file>', 'output safetensors')
  .addOption(new Option('--fusion-mode <m>', 'IFFM mode').choices(Object.keys(FUSION_MODES)).default('1'))
  .option('--gumbel-noise <file>', 'mode 1: fixed noise gumbel_noise_{v,t,pv} [B, L, 3, H] (without it the largest gate wins)')
  .option('--fixes', 'apply this port\'s fixes of reference bugs 5 and 11 (default: the original behaviour, as a PyTorch run)', false)
  .addOption(new Option('--backend <b>', 'TensorFlow.js back end').choices(Object.keys(BACKENDS)))
  .option('--json', 'print the losses as JSON', false);
fw.action(async () => {
  const o = fw.opts() as { config: string; weights: string; inputs: string; out: string; fusionMode: keyof typeof FUSION_MODES; gumbelNoise?: string; fixes: boolean; backend?: string; json: boolean };
  const backend = await startBackend(o.backend);
  const r = await forwardFiles({ ...o, fusionMode: FUSION_MODES[o.fusionMode] as FusionMode, fixes: o.fixes ? DEFAULT_FIXES : ORIGINAL_BEHAVIOUR });
  const report = { backend: backend.name, out: o.out, tensors: r.written.length, losses: r.losses };
  printReport(report, formatTable('k3m-model forward', [['backend', backend.name], ...Object.entries(r.losses).map(([k, v]) => [k, v] as TableRow), ['tensors written', r.written.length]]), { json: o.json });
});

const sum = program
  .command('summary')
  .description('after the pipeline: every stage report (in, written, rejected, time), the run\'s final losses and accuracies, and where its files are')
  .option('--work-dir <dir>', 'work directory every stage reads and writes', 'work')
  .option('--name <name>', 'training run', 'k3m-small')
  .option('--json', 'print the summary as JSON on stdout', false);
sum.action(async () => {
  const o = sum.opts() as { workDir: string; name: string; json: boolean };
  const s = await pipelineSummary(o.workDir, o.name);
  process.stdout.write((o.json ? JSON.stringify(s.json, null, 2) : s.text) + '\n');
});

addEvaluateCommand(program);

await runCli('k3m-model', program);

/**
 * @file `k3m-model`: `pretrain` (the nx target), `build-vocab` and `forward` (parity with a
 * PyTorch run). Thin commander layer over the library API; `--config` JSON files merge under
 * the flags (a `model` key there holds BERT-style model config overrides).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { z } from 'zod';
import {
  UsageError,
  addCommonOptions,
  enumOf,
  finishReport,
  floatArg,
  formatTable,
  intArg,
  loadConfig,
  printReport,
  resolveCommon,
  runCli,
  writeFileAtomic,
  writeReport,
  type CommonFlags,
  type TableRow,
} from '@k3m-kit/core';
import { BACKENDS, backendLine, startBackend } from './backend.ts';
import { MODALITIES, type Modality } from './data/corrupt.ts';
import { KNOWLEDGE_MASKING } from './data/preprocess.ts';
import { buildVocab, recordTexts, writeVocabFile } from './data/vocab.ts';
import { PRESETS } from './model/config.ts';
import { forwardFiles } from './model/forward-files.ts';
import { DEFAULT_FIXES, LOSS_NAMES, ORIGINAL_BEHAVIOUR, type FusionMode } from './model/k3m.ts';
import { pretrain, pretrainStageName, type PretrainResult } from './train/pretrain.ts';
import { lmdbSource, workDirSources, LMDB_FILES } from './train/records.ts';
import { addEvaluateCommand } from './eval/command.ts';

const prob = (flag: string) => floatArg(flag, 0, 1);
const FUSION_MODES = { '0': 0, '1': 1, '2': 2, '3': 3 } as const;

const PretrainConfig = z.object({
  workDir: z.string(),
  shard: z.string().optional(),
  numShards: z.number().int().positive().optional(),
  config: z.string().optional(),
  quiet: z.boolean(),
  json: z.boolean(),
  preset: enumOf(PRESETS),
  model: z.record(z.string(), z.unknown()).optional(),
  modelConfig: z.string().optional(),
  name: z.string().regex(/^[\w.-]+$/, 'letters, digits, _ . - only'),
  steps: z.number().int().positive().optional(),
  epochs: z.number().int().positive(),
  batchSize: z.number().int().min(2),
  lr: z.number().positive(),
  warmup: z.number().min(0).max(1),
  accumulate: z.number().int().positive(),
  clip: z.number().positive().optional(),
  seed: z.number().int().nonnegative(),
  backend: enumOf(BACKENDS).optional(),
  vocab: z.string().optional(),
  initFrom: z.string().optional(),
  resume: z.boolean(),
  checkpointEvery: z.number().int().positive(),
  fusionMode: enumOf(FUSION_MODES),
  modalities: z.array(z.enum(MODALITIES)).min(1),
  knowledgeMasking: enumOf(KNOWLEDGE_MASKING),
  shuffleBuffer: z.number().int().nonnegative(),
  dropTitle: z.number().min(0).max(1),
  dropImage: z.number().min(0).max(1),
  dropKnowledge: z.number().min(0).max(1),
  noiseTitle: z.number().min(0).max(1),
  noiseImage: z.number().min(0).max(1),
  noiseKnowledge: z.number().min(0).max(1),
  samStaleTriples: z.boolean(),
  nanLosses: z.boolean(),
});

const parseModalities = (v: string): Modality[] => {
  const parts = v.split(',').map((s) => s.trim()).filter(Boolean);
  for (const p of parts) if (!(MODALITIES as readonly string[]).includes(p)) throw new UsageError(`--modalities ${v}: each must be one of ${MODALITIES.join(', ')}`);
  return [...new Set(parts)] as Modality[];
};

const program = new Command().description('The K3M model in TensorFlow.js: pretraining, evaluation and parity tools');

const pre = addCommonOptions(program.command('pretrain').description('pretrain K3M on <work-dir>/image_lmdb_json/*_feat_all.lmdb into <work-dir>/runs/<name>/'))
  .addOption(new Option('--preset <name>', 'model size').choices(Object.keys(PRESETS)).default('k3m-small'))
  .option('--model-config <file>', "model config JSON (BERT-style keys, e.g. the original's config file) over the preset")
  .option('--name <name>', 'run name: outputs in <work-dir>/runs/<name>/', 'k3m-small')
  .addOption(new Option('--steps <n>', 'optimizer steps (overrides --epochs)').argParser(intArg('--steps', 1)))
  .addOption(new Option('--epochs <n>', 'passes over the training records (reference 6; default sized for the embedded sample on 2 cores)').argParser(intArg('--epochs', 1)).default(2))
  .addOption(new Option('--batch-size <n>', 'records per micro-batch (>= 2)').argParser(intArg('--batch-size', 2)).default(8))
  .addOption(new Option('--lr <x>', 'peak learning rate (reference 1e-4)').argParser(floatArg('--lr', 0)).default(5e-4))
  .addOption(new Option('--warmup <x>', 'warm-up share of the steps').argParser(prob('--warmup')).default(0.1))
  .addOption(new Option('--accumulate <n>', 'micro-batches per optimizer step').argParser(intArg('--accumulate', 1)).default(1))
  .addOption(new Option('--clip <x>', 'clip the global gradient norm (off by default, as the reference)').argParser(floatArg('--clip', 0)))
  .addOption(new Option('--seed <n>', 'seed of init, data order, masking, dropout, Gumbel noise').argParser(intArg('--seed')).default(42))
  .addOption(new Option('--backend <b>', 'TensorFlow.js back end (default: the first that loads)').choices(Object.keys(BACKENDS)))
  .option('--vocab <file>', 'vocab.txt (e.g. bert-base-chinese); default: built from the training titles and knowledge')
  .option('--init-from <file>', 'Hugging Face BERT safetensors loaded into the text stream (reference 4.8)')
  .option('--resume', 'continue from the run directory\'s last checkpoint', false)
  .addOption(new Option('--checkpoint-every <n>', 'optimizer steps between checkpoints').argParser(intArg('--checkpoint-every', 1)).default(100))
  .addOption(new Option('--fusion-mode <m>', 'IFFM: 0 mean, 1 hard Gumbel (reference default), 2 soft, 3 interactive only').choices(Object.keys(FUSION_MODES)).default('1'))
  .addOption(new Option('--modalities <list>', 'modalities to learn from (a missing one is always empty, its losses off)').argParser(parseModalities).default([...MODALITIES], 'title,image,knowledge'))
  .addOption(new Option('--knowledge-masking <m>', 'reference (deterministic, values of PVs 2..n) or random (15% of values)').choices(['reference', 'random']).default('reference'))
  .addOption(new Option('--shuffle-buffer <n>', 'records held for shuffling').argParser(intArg('--shuffle-buffer')).default(5000))
  .addOption(new Option('--drop-title <p>', 'probability an item\'s title is blanked').argParser(prob('--drop-title')).default(0))
  .addOption(new Option('--drop-image <p>', 'probability an item\'s image is blanked').argParser(prob('--drop-image')).default(0))
  .addOption(new Option('--drop-knowledge <p>', 'probability an item\'s knowledge is blanked').argParser(prob('--drop-knowledge')).default(0))
  .addOption(new Option('--noise-title <p>', 'probability an item gets another item\'s title').argParser(prob('--noise-title')).default(0))
  .addOption(new Option('--noise-image <p>', 'probability an item gets another item\'s image').argParser(prob('--noise-image')).default(0))
  .addOption(new Option('--noise-knowledge <p>', 'probability an item gets another item\'s knowledge').argParser(prob('--noise-knowledge')).default(0))
  .option('--sam-stale-triples', 'reference bug 5: an item without PV pairs reuses the previous item\'s triples', false)
  .option('--nan-losses', 'reference bug 11: a loss with no labelled position is NaN', false);

pre.action(async () => {
  const cfg = await loadConfig(PretrainConfig, pre, pre.opts().config);
  const common = resolveCommon(cfg as CommonFlags);
  // One model trains in one process; a shard of the records would be a different model.
  if (common.shard.count > 1) throw new UsageError(`--shard ${common.shard.index}/${common.shard.count}: pretrain is not sharded (run it once)`);
  let model = cfg.model;
  if (cfg.modelConfig) {
    try {
      const j = JSON.parse(await readFile(cfg.modelConfig, 'utf8')) as Record<string, unknown>;
      model = { ...((j.config as Record<string, unknown>) ?? j), ...model };
    } catch (e) {
      throw new UsageError(`--model-config ${cfg.modelConfig}: ${(e as Error).message}`);
    }
  }
  const backend = await startBackend(cfg.backend);
  if (!common.quiet) process.stderr.write(`${backendLine(backend)}\n`);
  let sources;
  try {
    sources = workDirSources(common.workDir);
  } catch (e) {
    throw new UsageError(`--work-dir ${common.workDir}: no training LMDB at ${LMDB_FILES.train} (run lmdb-writer convert first): ${(e as Error).message}`);
  }
  const fixes = { samEmptyKnowledge: !cfg.samStaleTriples, lossNanGuard: !cfg.nanLosses };
  const ac = new AbortController();
  const onSigint = () => ac.abort();
  process.once('SIGINT', onSigint);
  let result: PretrainResult;
  try {
    result = await pretrain({
      workDir: common.workDir,
      name: cfg.name,
      preset: cfg.preset,
      model,
      train: sources.train,
      validation: sources.validation,
      steps: cfg.steps,
      epochs: cfg.epochs,
      batchSize: cfg.batchSize,
      lr: cfg.lr,
      warmup: cfg.warmup,
      accumulate: cfg.accumulate,
      clip: cfg.clip,
      seed: cfg.seed,
      fusionMode: FUSION_MODES[cfg.fusionMode] as FusionMode,
      modalities: cfg.modalities,
      corruption: { dropTitle: cfg.dropTitle, dropImage: cfg.dropImage, dropKnowledge: cfg.dropKnowledge, noiseTitle: cfg.noiseTitle, noiseImage: cfg.noiseImage, noiseKnowledge: cfg.noiseKnowledge },
      fixes,
      knowledgeMasking: cfg.knowledgeMasking,
      vocab: cfg.vocab,
      initFrom: cfg.initFrom,
      resume: cfg.resume,
      checkpointEvery: cfg.checkpointEvery,
      shuffleBuffer: cfg.shuffleBuffer,
      quiet: common.quiet,
      signal: ac.signal,
      backend: backend.name,
      log: common.quiet ? undefined : (l) => process.stderr.write(`${l}\n`),
    });
  } finally {
    process.off('SIGINT', onSigint);
  }
  if (result.aborted) {
    process.stderr.write(`k3m-model: interrupted at step ${result.steps}; --resume continues from the last checkpoint\n`);
    process.exitCode = 130;
    return;
  }
  const report = pretrainReport(result, backend.name, backendLine(backend), cfg);
  await writeReport(common.workDir, pretrainStageName(cfg.name), report);
  await writeFileAtomic(join(result.runDir, 'report.json'), JSON.stringify(report, null, 2) + '\n');
  printReport(report, pretrainTable(report), common);
});

const meanOf = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);

/** reports/k3m-model-pretrain.json: accounting, back end, steps, losses, throughput. */
export function pretrainReport(r: PretrainResult, backend: string, backendText: string, cfg: z.infer<typeof PretrainConfig>) {
  const s = r.stepMetrics;
  const k = Math.max(1, Math.floor(s.length / 10));
  const lossesOf = (xs: typeof s): Record<string, number | null> => ({
    loss: meanOf(xs.map((m) => m.loss)),
    ...Object.fromEntries(LOSS_NAMES.map((n) => [n, meanOf(xs.map((m) => m.losses[n]).filter((v): v is number => v !== undefined))])),
  });
  const sps = s.slice(1).map((m) => m.samples_per_s).sort((a, b) => a - b);
  return finishReport({
    stage: 'k3m-model-pretrain',
    in: r.records.in,
    written: r.records.in - r.records.rejected,
    rejected: r.records.rejected,
    rejectedByReason: r.records.rejectedByReason,
    seconds: r.seconds,
    backend,
    backendDetail: backendText,
    run: cfg.name,
    runDir: r.runDir,
    preset: cfg.preset,
    parameters: r.parameters,
    vocabSize: r.vocabSize,
    vocabBuilt: r.vocabBuilt,
    modalities: cfg.modalities,
    fusionMode: Number(cfg.fusionMode),
    fixes: { samEmptyKnowledge: !cfg.samStaleTriples, lossNanGuard: !cfg.nanLosses },
    steps: r.steps,
    totalSteps: r.totalSteps,
    epochsRun: r.epochsRun,
    batchSize: cfg.batchSize,
    accumulate: cfg.accumulate,
    lr: cfg.lr,
    resumedFrom: r.resumedFrom ?? null,
    initFrom: r.initFrom ? { loaded: r.initFrom.loaded.length, skipped: r.initFrom.skipped } : null,
    trainLossFirst: lossesOf(s.slice(0, k)),
    trainLossLast: lossesOf(s.slice(-k)),
    validationFirst: r.validation[0] ?? null,
    validationLast: r.validation.at(-1) ?? null,
    samplesPerSecond: sps.length ? sps[Math.floor(sps.length / 2)]! : (s[0]?.samples_per_s ?? 0),
    // Steps only (data, forward, backward, update); validation passes excluded.
    msPerStep: meanOf(s.map((m) => (1000 * cfg.batchSize * cfg.accumulate) / m.samples_per_s)) ?? 0,
    trainSeconds: r.trainSeconds,
  });
}

function pretrainTable(r: ReturnType<typeof pretrainReport>): string {
  const f = (x: unknown) => (typeof x === 'number' ? x.toFixed(4) : '-');
  const rows: TableRow[] = [
    ['backend', r.backend],
    ['run', r.runDir],
    ['parameters', r.parameters],
    ['records in / usable / rejected', `${r.in} / ${r.written} / ${r.rejected}`],
    ['steps', `${r.steps} / ${r.totalSteps} (${r.epochsRun} epochs)`],
    ['train loss first -> last', `${f(r.trainLossFirst.loss)} -> ${f(r.trainLossLast.loss)}`],
  ];
  for (const n of LOSS_NAMES) {
    const a = r.validationFirst?.losses[n];
    const b = r.validationLast?.losses[n];
    if (a !== undefined || b !== undefined) rows.push([`val ${n} first -> last`, `${f(a)} -> ${f(b)}`]);
  }
  if (r.validationLast) {
    const acc = r.validationLast.accuracy;
    rows.push(['val accuracy title/knowledge/structure', `${f(acc.title_mlm)} / ${f(acc.knowledge_mlm)} / ${f(acc.structure)}`]);
  }
  rows.push(['samples/s (median step)', r.samplesPerSecond], ['ms per step', r.msPerStep], ['seconds', r.seconds]);
  return formatTable('k3m-model pretrain', rows);
}

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
  const common = resolveCommon(cfg as CommonFlags);
  const t0 = performance.now();
  const src = lmdbSource(join(common.workDir, LMDB_FILES.train));
  const built = await buildVocab(recordTexts(src.records()), { maxSize: cfg.maxSize, minFrequency: cfg.minFrequency });
  const out = cfg.out ?? join(common.workDir, 'vocab.txt');
  await writeVocabFile(out, built.tokens);
  const report = finishReport({ stage: 'k3m-model-build-vocab', in: src.length, written: src.length, rejected: 0, rejectedByReason: {}, seconds: (performance.now() - t0) / 1000, out, size: built.tokens.length, ...built.stats });
  await writeReport(common.workDir, 'k3m-model-build-vocab', report);
  printReport(report, formatTable('k3m-model build-vocab', [['records', src.length], ['tokens', built.tokens.length], ['characters', built.stats.chars], ['whole words', built.stats.wholeWords], ['written to', out]]), common);
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

addEvaluateCommand(program);

await runCli('k3m-model', program);

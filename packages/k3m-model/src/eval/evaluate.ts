/**
 * @file `evaluate(config)`: the robustness table of issue 7. Loads the work directory's records
 * and knowledge graph, makes the seeded splits, and for the model pretrained with knowledge and
 * the one pretrained without it (`--modalities title,image`, same budget and seed) runs every
 * task under every grid cell, then writes `runs/<run>/eval/` (results.json, results.md, plots)
 * and `reports/k3m-model-evaluate.json`.
 *
 * One split serves every task (reported in results.json, id lists in eval/split.json): probes
 * are fitted on the training LMDB's items and scored on the validation LMDB's items (the
 * retrieval gallery); without a validation LMDB, a seeded 80/20 split of the training items.
 * `--max-fit-items` / `--max-eval-items` take a seeded sample of each side. With kg-triples'
 * files present, every item is shown without its held-out knowledge pairs and the completion
 * questions are made on the same records (completion.ts), so one encoding of an item serves
 * classification and completion alike.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { createProgress, finishReport, UsageError, writeFileAtomic, writeReport, type StageReportBase } from '@k3m-kit/core';
import { RecordReader, type K3mRecord } from '@k3m-kit/lmdb-writer';
import { ENTITY_FILE, RELATION_FILE, TEST_FILE, TRAIN_FILE, VALID_FILE, readTriples2id, readVocab } from '@k3m-kit/kg-triples';
import { describeBackend, startBackend } from '../backend.ts';
import { recordProblem, resolvePreprocessOptions } from '../data/preprocess.ts';
import { Rng } from '@k3m-kit/core';
import { LMDB_FILES } from '../train/records.ts';
import { buildCompletionSplit, type BuiltCompletionSplit, type KgTables } from './completion.ts';
import { CachedEncoder } from './encoder.ts';
import { CORRUPTION_KINDS, DEFAULT_RATES, corruptionGrid, type CorruptionKindName, type GridCell } from './grid.ts';
import type { ConditionalProbeOptions, ProbeBudget, ProjectionOptions } from './probe.ts';
import { chanceRank } from './metrics.ts';
import { MODEL_KEYS, toJsonNumber, writeResults, type EvalResults, type ModelKey, type ResultCell } from './results.ts';
import { openRun, type OpenedModel } from './run-encoder.ts';
import { classificationTask, completionTask, retrievalTask, type TaskContext, type TaskResult } from './tasks.ts';

export const STAGE = 'k3m-model-evaluate';

export const EVAL_TASKS = Object.freeze({
  classification: 'item classification on the category field',
  retrieval: 'cross-modal retrieval title->image and image->title',
  completion: "knowledge completion on kg-triples' test triples",
});
export type EvalTaskName = keyof typeof EVAL_TASKS;

const kindNames = Object.keys(CORRUPTION_KINDS) as [CorruptionKindName, ...CorruptionKindName[]];
const taskNames = Object.keys(EVAL_TASKS) as [EvalTaskName, ...EvalTaskName[]];

export const EvaluateConfigSchema = z.object({
  workDir: z.string().min(1),
  /** The run pretrained with knowledge; results go to `runs/<run>/eval/`. */
  run: z.string().min(1).default('k3m-small'),
  /** The run pretrained with `--modalities title,image`. */
  baseline: z.string().min(1).default('k3m-small-noknow'),
  /** Where results go; default `runs/<run>/eval/`. */
  outDir: z.string().min(1).optional(),
  seed: z.number().int().default(42),
  tasks: z.array(z.enum(taskNames)).min(1).default([...taskNames]),
  kinds: z.array(z.enum(kindNames)).default([...kindNames]),
  rates: z.array(z.number().min(0).max(1)).min(1).default([...DEFAULT_RATES]),
  /** Seeded cap on fit-side items (0 = all). */
  maxFitItems: z.number().int().nonnegative().default(0),
  /** Seeded cap on evaluation items, i.e. the retrieval gallery (0 = all). */
  maxEvalItems: z.number().int().nonnegative().default(0),
  /** Share of the fit items the probes see corrupted (kinds dealt round-robin), 0 = clean only. */
  fitCorruption: z.number().min(0).max(1).default(0.5),
  probeSteps: z.number().int().positive().default(300),
  probeBatch: z.number().int().nonnegative().default(128),
  probeLr: z.number().positive().default(0.003),
  /** L2 penalty on probe weights; strong, because the fit side has hundreds of items for 512-wide rows. */
  probeWeightDecay: z.number().nonnegative().default(0.05),
  /** Width of the retrieval projection space. */
  projectionDim: z.number().int().positive().default(64),
  /** Processes: 2 evaluates the two models side by side (the default opener only). */
  workers: z.number().int().min(1).max(2).default(2),
  /** Records per forward pass. */
  batchSize: z.number().int().positive().default(32),
  backend: z.string().optional(),
  quiet: z.boolean().default(false),
});
export type EvaluateConfig = z.input<typeof EvaluateConfigSchema>;
type Resolved = z.output<typeof EvaluateConfigSchema>;

export interface EvaluateReport extends StageReportBase {
  evalDir: string;
  backend: string;
  results: EvalResults;
  files: string[];
}

/** Opens a run; injectable so tests can evaluate without a pretrained model. */
export type ModelOpener = (runDir: string, role: ModelKey) => Promise<OpenedModel>;

const defaultOpener = (c: Resolved): ModelOpener => (runDir) => openRun(runDir, c.batchSize);

/** The with-knowledge run must have learnt from knowledge and the baseline must not have. */
function checkRole(role: ModelKey, name: string, modalities: readonly string[]): void {
  const knows = modalities.includes('knowledge');
  if (role === 'with-knowledge' && !knows) throw new UsageError(`--run ${name}: pretrained without knowledge (modalities ${modalities.join(',')})`);
  if (role === 'without-knowledge' && knows) {
    throw new UsageError(`--baseline ${name}: pretrained with knowledge; pretrain it with --modalities title,image`);
  }
}

function readLmdb(path: string): K3mRecord[] {
  const reader = RecordReader.open(path);
  // Records are views into the reader's buffers: keep the reader open for the process.
  return [...reader];
}

const digest = (ids: readonly string[]) => createHash('sha1').update(ids.join('\n')).digest('hex');

function sample<T>(items: readonly T[], cap: number, rng: Rng): T[] {
  if (cap <= 0 || items.length <= cap) return [...items];
  const idx = rng.shuffle([...items.keys()]).slice(0, cap).sort((a, b) => a - b);
  return idx.map((i) => items[i]!);
}

async function readKg(kgDir: string): Promise<KgTables | undefined> {
  const files = [ENTITY_FILE, RELATION_FILE, TRAIN_FILE, VALID_FILE, TEST_FILE].map((f) => join(kgDir, f));
  if (!files.every(existsSync)) return undefined;
  const triples = async (p: string) => {
    const out: [number, number, number][] = [];
    for await (const t of readTriples2id(p)) out.push(t);
    return out;
  };
  return {
    entities: await readVocab(files[0]!),
    relations: await readVocab(files[1]!),
    train: await triples(files[2]!),
    valid: await triples(files[3]!),
    test: await triples(files[4]!),
  };
}

/** Everything both models are evaluated on, computed the same way in every process. */
interface Prepared {
  c: Resolved;
  runDirs: Record<ModelKey, string>;
  evalDir: string;
  fit: readonly K3mRecord[];
  evalItems: readonly K3mRecord[];
  completion?: BuiltCompletionSplit;
  tasks: EvalTaskName[];
  cells: GridCell[];
  budgets: {
    classifier: ProbeBudget;
    projection: ProjectionOptions;
    completion: ConditionalProbeOptions;
    fitCorruption: { kinds: CorruptionKindName[]; share: number };
  };
  splits: Record<string, unknown>;
  counts: { in: number; usable: number; rejectedByReason: Record<string, number> };
}

async function prepare(c: Resolved): Promise<Prepared> {
  const runDirs: Record<ModelKey, string> = {
    'with-knowledge': join(c.workDir, 'runs', c.run),
    'without-knowledge': join(c.workDir, 'runs', c.baseline),
  };
  const evalDir = c.outDir ?? join(runDirs['with-knowledge'], 'eval');

  const trainPath = join(c.workDir, LMDB_FILES.train);
  const validPath = join(c.workDir, LMDB_FILES.validation);
  const rawTrain = readLmdb(trainPath);
  const rawValid = existsSync(validPath) ? readLmdb(validPath) : undefined;
  // Records the model cannot read (sizes that disagree with the first record's) are rejected, as pretraining does.
  const dims = resolvePreprocessOptions({ featureDim: rawTrain[0]?.featureDim, numClasses: rawTrain[0]?.numClasses });
  const rejectedByReason: Record<string, number> = {};
  const usable = (rs: K3mRecord[]) =>
    rs.filter((r) => {
      const why = recordProblem(r, dims);
      if (why) rejectedByReason[why] = (rejectedByReason[why] ?? 0) + 1;
      return why === null;
    });
  const trainRecords = usable(rawTrain);
  const validRecords = rawValid && usable(rawValid);
  let fitAll = trainRecords;
  let evalAll = validRecords ?? [];
  let splitSource = 'fit = training LMDB, eval = validation LMDB';
  if (!validRecords) {
    const order = Rng.from(c.seed, 'eval-split').shuffle([...trainRecords.keys()]);
    const cut = Math.round(order.length * 0.8);
    fitAll = order.slice(0, cut).sort((a, b) => a - b).map((i) => trainRecords[i]!);
    evalAll = order.slice(cut).sort((a, b) => a - b).map((i) => trainRecords[i]!);
    splitSource = 'no validation LMDB: seeded 80/20 split of the training LMDB';
  }
  const fitBase = sample(fitAll, c.maxFitItems, Rng.from(c.seed, 'eval-fit-sample'));
  const evalBase = sample(evalAll, c.maxEvalItems, Rng.from(c.seed, 'eval-eval-sample'));
  if (fitBase.length < 2 || evalBase.length < 2) {
    throw new Error(`evaluation needs at least 2 fit and 2 evaluation items, got ${fitBase.length} and ${evalBase.length} (${splitSource})`);
  }

  // Knowledge completion questions, and the records every task sees.
  const kg = await readKg(join(c.workDir, 'kg'));
  const completion = kg ? buildCompletionSplit(kg, fitBase, evalBase, { seed: c.seed, hidePerItem: 2 }) : undefined;
  const fit = completion?.fitRecords ?? fitBase;
  const evalItems = completion?.evalRecords ?? evalBase;
  const tasks = c.tasks.filter((t) => t !== 'completion' || (completion && completion.evalExamples.length > 0 && completion.fitExamples.length > 0));

  const splits = {
    items: {
      source: splitSource,
      seed: c.seed,
      fit: { items: fit.length, of: fitAll.length, idsSha1: digest(fit.map((r) => r.imageId)) },
      eval: { items: evalItems.length, of: evalAll.length, idsSha1: digest(evalItems.map((r) => r.imageId)) },
    },
    completion: completion
      ? {
          source: 'questions: kg/valid2id.txt + test2id.txt triples of the evaluation items (fit: up to 2 hidden training pairs per fit item); every item shown without its held-out pairs',
          valueVocabulary: completion.numValues,
          relations: completion.numRelations,
          fitQuestions: completion.fitExamples.length,
          evalQuestions: completion.evalExamples.length,
          heldOutTriplesOfOtherItems: completion.unusedHeldOut,
        }
      : { skipped: 'kg/ OpenKE files not found' },
  };
  const budget = { steps: c.probeSteps, learningRate: c.probeLr, weightDecay: c.probeWeightDecay, batchSize: c.probeBatch, seed: c.seed };
  return {
    c,
    runDirs,
    evalDir,
    fit,
    evalItems,
    completion,
    tasks,
    cells: corruptionGrid(c.kinds, c.rates),
    budgets: {
      classifier: budget,
      projection: { ...budget, dim: c.projectionDim, temperature: 0.1 },
      completion: { ...budget, hidden: 128 },
      fitCorruption: { kinds: c.fitCorruption > 0 ? c.kinds : [], share: c.fitCorruption },
    },
    splits,
    counts: { in: rawTrain.length + (rawValid?.length ?? 0), usable: trainRecords.length + (validRecords?.length ?? 0), rejectedByReason },
  };
}

/** One model's share of the results (what a worker process sends back). */
export interface ModelOutcome {
  role: ModelKey;
  /** Cell id to metric to value. */
  values: Record<string, Record<string, number | null>>;
  model: EvalResults['models'][ModelKey];
  fits: Record<string, unknown>;
  timings: Record<string, number>;
}

async function runModel(p: Prepared, role: ModelKey, opener: ModelOpener, onCell?: () => void): Promise<ModelOutcome> {
  const { c } = p;
  const opened = await opener(p.runDirs[role], role);
  checkRole(role, role === 'with-knowledge' ? c.run : c.baseline, opened.modalities);
  const encoder = new CachedEncoder(opened.encoder, c.batchSize);
  const ctx: TaskContext = {
    encoder,
    usesKnowledge: opened.modalities.includes('knowledge'),
    cells: p.cells,
    seed: c.seed,
    fitCorruption: p.budgets.fitCorruption.kinds,
    fitCorruptionShare: c.fitCorruption,
    onCell,
  };
  const values: ModelOutcome['values'] = Object.fromEntries(p.cells.map((cell) => [cell.id, {}]));
  const fits: Record<string, unknown> = {};
  const timings: Record<string, number> = {};
  const merge = (task: string, r: TaskResult, prefix: string) => {
    fits[`${role}.${task}`] = r.fit;
    for (const [id, m] of Object.entries(r.cells)) for (const [k, v] of Object.entries(m)) values[id]![`${prefix}${k}`] = toJsonNumber(v);
  };
  try {
    for (const task of p.tasks) {
      const t = performance.now();
      const split = { fit: p.fit, eval: p.evalItems };
      if (task === 'classification') merge(task, await classificationTask(ctx, split, p.budgets.classifier), 'classification.');
      if (task === 'retrieval') merge(task, await retrievalTask(ctx, split, p.budgets.projection), '');
      if (task === 'completion') merge(task, await completionTask(ctx, p.completion!, p.budgets.completion), 'completion.');
      timings[`${role}.${task}`] = (performance.now() - t) / 1000;
    }
  } finally {
    opened.dispose?.();
  }
  return { role, values, fits, timings, model: { run: p.runDirs[role], usesKnowledge: ctx.usesKnowledge, encoded: encoder.encoded, cacheHits: encoder.hits } };
}

/**
 * One model's evaluation, for a worker process: the same preparation as {@link evaluate}, then
 * that model's tasks.
 */
export async function evaluateModel(config: EvaluateConfig, role: ModelKey): Promise<ModelOutcome> {
  const c = EvaluateConfigSchema.parse(config);
  await startBackend(c.backend);
  return runModel(await prepare(c), role, defaultOpener(c));
}

/** Runs {@link evaluateModel} in a child process (its own wasm instance, so its own core). */
function runModelInChild(c: Resolved, role: ModelKey): Promise<ModelOutcome> {
  const worker = fileURLToPath(new URL('./model-worker.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), worker], { stdio: ['pipe', 'pipe', 'inherit'] });
  child.stdin.end(JSON.stringify({ config: c, role }));
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`evaluation worker for ${role} exited with code ${code}`));
      try {
        resolve(JSON.parse(out.slice(out.lastIndexOf('\n{') + 1)) as ModelOutcome);
      } catch (e) {
        reject(new Error(`evaluation worker for ${role} sent no result (${(e as Error).message})`));
      }
    });
  });
}

/**
 * Runs the evaluation. `openModel` defaults to loading `runs/<name>/` checkpoints; with the
 * default and `workers` >= 2, the model without knowledge is evaluated in a child process while
 * this one evaluates the model with knowledge (wasm runs one thread per process).
 * @example const report = await evaluate({ workDir: 'work' }); // runs/k3m-small/eval/results.md
 */
export async function evaluate(config: EvaluateConfig, openModel?: ModelOpener): Promise<EvaluateReport> {
  const c = EvaluateConfigSchema.parse(config);
  const t0 = performance.now();
  const backend = await startBackend(c.backend);
  if (!openModel) {
    for (const [flag, name, hint] of [
      ['--run', c.run, ''],
      ['--baseline', c.baseline, ' --modalities title,image'],
    ] as const) {
      const dir = join(c.workDir, 'runs', name);
      if (!existsSync(join(dir, 'config.json'))) throw new UsageError(`${flag} ${name}: no pretrained run in ${dir} (k3m-model pretrain --name ${name}${hint})`);
    }
  }
  const p = await prepare(c);
  const { fit, evalItems, completion, cells, budgets, splits } = p;
  await writeFileAtomic(
    join(p.evalDir, 'split.json'),
    JSON.stringify({ seed: c.seed, fit: fit.map((r) => r.imageId), eval: evalItems.map((r) => r.imageId) }, null, 2) + '\n',
  );

  const parallel = !openModel && c.workers >= 2;
  const perModel = cells.length * p.tasks.length;
  const progress = createProgress('evaluate', parallel ? perModel : MODEL_KEYS.length * perModel, { quiet: c.quiet });
  const opener = openModel ?? defaultOpener(c);
  let outcomes: ModelOutcome[];
  if (parallel) {
    // Refuse a wrong baseline here, with the usage message, not from inside the child.
    const baseline = await opener(p.runDirs['without-knowledge'], 'without-knowledge');
    baseline.dispose?.();
    checkRole('without-knowledge', c.baseline, baseline.modalities);
    const child = runModelInChild(c, 'without-knowledge');
    // Keep the child's rejection observed while this process works.
    child.catch(() => undefined);
    const own = await runModel(p, 'with-knowledge', opener, () => progress.increment());
    outcomes = [own, await child];
  } else {
    outcomes = [];
    for (const role of MODEL_KEYS) outcomes.push(await runModel(p, role, opener, () => progress.increment()));
  }
  progress.stop();
  const values = Object.fromEntries(
    cells.map((cell) => [cell.id, Object.fromEntries(outcomes.map((o) => [o.role, o.values[cell.id] ?? {}]))]),
  ) as Record<string, Record<ModelKey, Record<string, number | null>>>;
  const models = Object.fromEntries(outcomes.map((o) => [o.role, o.model])) as EvalResults['models'];
  const fits = Object.assign({}, ...outcomes.map((o) => o.fits)) as Record<string, unknown>;
  const timings = Object.assign({}, ...outcomes.map((o) => o.timings)) as Record<string, number>;
  const ks = [1, 5, 10];
  const rc = chanceRank(evalItems.length, ks);
  const counts = new Map<string, number>();
  for (const r of fit) counts.set(r.category, (counts.get(r.category) ?? 0) + 1);
  const majority = [...counts.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0]![0];
  const chance: Record<string, number | null> = {
    'classification.accuracy': toJsonNumber(evalItems.filter((r) => r.category === majority).length / evalItems.length),
  };
  for (const d of ['title-to-image', 'image-to-title']) {
    for (const k of ks) chance[`${d}.rank@${k}`] = toJsonNumber(rc.hitsAt[k]);
    chance[`${d}.meanRank`] = toJsonNumber(rc.meanRank);
  }
  if (completion) {
    const vc = chanceRank(completion.numValues, [1, 10]);
    chance['completion.hits@1'] = toJsonNumber(vc.hitsAt[1]);
    chance['completion.hits@10'] = toJsonNumber(vc.hitsAt[10]);
    chance['completion.meanRank'] = toJsonNumber(vc.meanRank);
  }
  const resultCells: ResultCell[] = cells.map((cell) => ({ id: cell.id, kind: cell.kind, rate: cell.rate, values: values[cell.id]! }));
  const results: EvalResults = {
    stage: STAGE,
    seed: c.seed,
    backend: describeBackend(backend),
    models,
    splits,
    budgets: { ...budgets, workers: parallel ? 2 : 1, fits, timingsSeconds: timings },
    chance,
    protocol: {
      classification: 'softmax probe on the frozen feature row [pooled title; pooled image; pooled knowledge; item], fitted on the fit side, scored on the corrupted evaluation items; chance = majority class of the fit side',
      retrieval:
        'text side = title PLUS the item knowledge (knowledge model only), image side = the image alone, each encoded with the other side hidden; title->image: text queries over an image gallery, image->title the reverse; one pair of linear projections trained with symmetric InfoNCE on the fit side (pretraining has no contrastive objective); ranks use the expected rank under random tie-breaking',
      completion:
        'item shown without its held-out pairs; a one-hidden-layer probe given the item feature row and the property scores every value of the value vocabulary; filtered Hits@K',
      corruption: 'applied to the evaluation side only, exact rates, seeded, nested across rates; the model without knowledge never sees knowledge',
      fitCorruption:
        c.fitCorruption > 0
          ? `probes are fitted on the fit items with a seeded ${Math.round(c.fitCorruption * 100)}% of them corrupted at 100% (one kind each, dealt round-robin)`
          : 'probes see clean fit items only',
    },
    cells: resultCells,
    seconds: (performance.now() - t0) / 1000,
  };
  const files = await writeResults(p.evalDir, results);
  const report = finishReport({
    stage: STAGE,
    in: p.counts.in,
    written: p.counts.usable,
    rejected: Object.values(p.counts.rejectedByReason).reduce((a, b) => a + b, 0),
    rejectedByReason: p.counts.rejectedByReason,
    seconds: (performance.now() - t0) / 1000,
    evalDir: p.evalDir,
    backend: describeBackend(backend),
    results,
    files,
  });
  await writeReport(c.workDir, STAGE, report);
  return report;
}

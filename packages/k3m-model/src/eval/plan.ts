/**
 * @file What both models are evaluated on, computed the same way in every process: the records
 * streamed from the work directory's LMDBs (records.ts), the one split (split.ts), the
 * knowledge-completion questions (completion.ts), the instance-retrieval queries and gallery,
 * the tasks that have data, the grid and the probe budgets.
 *
 * With kg-triples' files present, every item is shown without its held-out knowledge pairs and
 * the completion questions are made on the same items, so one encoding of an item serves
 * classification and completion alike.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '@k3m-kit/core';
import { RecordReader } from '@k3m-kit/lmdb-writer';
import { resolvePreprocessOptions } from '../data/preprocess.ts';
import { LMDB_FILES } from '../train/records.ts';
import { buildCompletionSplit, readKgTables, type BuiltCompletionSplit } from './completion.ts';
import { EVAL_TASKS, type EvalTaskName, type ResolvedEvaluateConfig } from './config.ts';
import { corruptionGrid, type CorruptionKindName, type GridCell } from './grid.ts';
import type { InstanceSplit } from './instance-retrieval.ts';
import { infosOf, subsetItems, type Items } from './items.ts';
import type { ConditionalProbeOptions, ProbeBudget, ProjectionOptions } from './probe.ts';
import { lmdbItems, scanLmdb } from './records.ts';
import type { ModelKey } from './results.ts';
import { idsDigest, splitItems, type ItemSplit } from './split.ts';

export interface EvaluationPlan {
  c: ResolvedEvaluateConfig;
  runDirs: Record<ModelKey, string>;
  evalDir: string;
  /** Fit-side items as every task sees them (held-out knowledge pairs hidden). */
  fit: Items;
  evalItems: Items;
  completion?: BuiltCompletionSplit;
  instance?: InstanceSplit;
  tasks: EvalTaskName[];
  cells: GridCell[];
  budgets: {
    classifier: ProbeBudget;
    projection: ProjectionOptions;
    completion: ConditionalProbeOptions;
    fitCorruption: { kinds: CorruptionKindName[]; share: number };
  };
  /** How the items were chosen, for results.json. */
  splits: Record<string, unknown>;
  /** Records read (counted as they streamed), usable, and rejected by reason. */
  counts: { in: number; usable: number; rejectedByReason: Record<string, number> };
  /** Closes the LMDBs the items read from. */
  close(): void;
}

/** The instance split: queries = evaluation items with instance labels, gallery = fit items showing one product. */
function instanceSplit(fit: Items, evalItems: Items): InstanceSplit | undefined {
  const positions = (items: Items, keep: (n: number) => boolean) =>
    [...Array(items.length).keys()].filter((i) => keep(items.info(i).instanceLabels?.length ?? 0));
  const queries = positions(evalItems, (n) => n >= 1);
  const gallery = positions(fit, (n) => n === 1);
  if (queries.length === 0 || gallery.length === 0) return undefined;
  return { queries: subsetItems(evalItems, queries), gallery: subsetItems(fit, gallery) };
}

/** The evaluated items of both sides, read from the LMDBs on demand, and what the reading counted. */
interface StreamedItems {
  fit: Items;
  eval: Items;
  split: ItemSplit;
  counts: EvaluationPlan['counts'];
  close(): void;
}

/**
 * One counting pass over each LMDB (records the model cannot read, sizes that disagree with
 * the first record's, are rejected as pretraining does), the split over the usable positions,
 * and the chosen items.
 */
function streamItems(c: ResolvedEvaluateConfig): StreamedItems {
  const validPath = join(c.workDir, LMDB_FILES.validation);
  const train = RecordReader.open(join(c.workDir, LMDB_FILES.train));
  const valid = existsSync(validPath) ? RecordReader.open(validPath) : undefined;
  const close = () => {
    train.close();
    valid?.close();
  };
  try {
    const first = train.length > 0 ? train.get(0) : undefined;
    const dims = resolvePreprocessOptions({ featureDim: first?.featureDim, numClasses: first?.numClasses });
    const rejectedByReason: Record<string, number> = {};
    const trainScan = scanLmdb(train, dims, rejectedByReason);
    const validScan = valid && scanLmdb(valid, dims, rejectedByReason);
    const split = splitItems(trainScan.usable, validScan?.usable, { seed: c.seed, maxFit: c.maxFitItems, maxEval: c.maxEvalItems });
    const fit = lmdbItems(train, split.fit.positions);
    const evalSide = lmdbItems(split.eval.source === 'validation' ? valid! : train, split.eval.positions);
    if (fit.length < 2 || evalSide.length < 2) {
      throw new Error(`evaluation needs at least 2 fit and 2 evaluation items, got ${fit.length} and ${evalSide.length} (${split.description})`);
    }
    const counts = { in: trainScan.read + (validScan?.read ?? 0), usable: trainScan.usable.length + (validScan?.usable.length ?? 0), rejectedByReason };
    return { fit, eval: evalSide, split, counts, close };
  } catch (e) {
    close();
    throw e;
  }
}

/**
 * The tasks to run: those named (each refused, naming it, when its data is missing), or every
 * task with data. Also returns why each task without data has none.
 */
function tasksWithData(c: ResolvedEvaluateConfig, completion: BuiltCompletionSplit | undefined, instance: InstanceSplit | undefined) {
  const missing: Partial<Record<EvalTaskName, string>> = {
    completion: !completion
      ? `no kg-triples OpenKE files in ${join(c.workDir, 'kg')} (run kg-triples build)`
      : completion.evalExamples.length === 0 || completion.fitExamples.length === 0
        ? 'the knowledge graph holds no questions about the fit or evaluation items'
        : undefined,
    'instance-retrieval': instance ? undefined : 'no evaluation item carries instance labels, or no fit item shows exactly one product',
  };
  for (const t of c.tasks ?? []) if (missing[t]) throw new UsageError(`--tasks ${t}: ${missing[t]}`);
  return { tasks: (c.tasks ?? (Object.keys(EVAL_TASKS) as EvalTaskName[])).filter((t) => !missing[t]), missing };
}

/** How the items and questions were chosen, for results.json. */
function describeSplits(
  c: ResolvedEvaluateConfig,
  items: { fit: Items; eval: Items; split: ItemSplit },
  completion: BuiltCompletionSplit | undefined,
  instance: InstanceSplit | undefined,
  instanceMissing: string | undefined,
): Record<string, unknown> {
  const digest = (side: Items) => idsDigest(infosOf(side).map((r) => r.imageId));
  return {
    items: {
      source: items.split.description,
      seed: c.seed,
      fit: { items: items.fit.length, of: items.split.fit.of, idsSha1: digest(items.fit) },
      eval: { items: items.eval.length, of: items.split.eval.of, idsSha1: digest(items.eval) },
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
    instance: instance
      ? {
          source: 'queries: evaluation items with instance labels; gallery: fit items showing exactly one product',
          queries: instance.queries.length,
          gallery: instance.gallery.length,
          multiProductQueries: infosOf(instance.queries).filter((i) => i.instanceLabels!.length > 1).length,
        }
      : { skipped: instanceMissing },
  };
}

/**
 * Streams the work directory's LMDBs and builds the plan. Tasks without data are left out when
 * the config names none, refused when it names them.
 */
export async function planEvaluation(c: ResolvedEvaluateConfig): Promise<EvaluationPlan> {
  const runDirs: Record<ModelKey, string> = {
    'with-knowledge': join(c.workDir, 'runs', c.run),
    'without-knowledge': join(c.workDir, 'runs', c.baseline),
  };
  const streamed = streamItems(c);
  try {
    const selected = new Set([...infosOf(streamed.fit), ...infosOf(streamed.eval)].map((i) => i.imageId));
    const kg = await readKgTables(join(c.workDir, 'kg'), selected);
    const completion = kg ? buildCompletionSplit(kg, streamed.fit, streamed.eval, { seed: c.seed, hidePerItem: 2 }) : undefined;
    // Every task sees the items without their held-out knowledge pairs.
    const fit = completion?.fitRecords ?? streamed.fit;
    const evalItems = completion?.evalRecords ?? streamed.eval;
    const instance = instanceSplit(fit, evalItems);
    const { tasks, missing } = tasksWithData(c, completion, instance);
    const budget = { steps: c.probeSteps, learningRate: c.probeLr, weightDecay: c.probeWeightDecay, batchSize: c.probeBatch, seed: c.seed };
    return {
      c,
      runDirs,
      evalDir: c.outDir ?? join(runDirs['with-knowledge'], 'eval'),
      fit,
      evalItems,
      completion,
      instance,
      tasks,
      cells: corruptionGrid(c.kinds, c.rates),
      budgets: {
        classifier: budget,
        projection: { dim: c.projectionDim, shrinkages: c.projectionShrinkages, seed: c.seed },
        completion: { ...budget, hidden: 128 },
        fitCorruption: { kinds: c.fitCorruption > 0 ? c.kinds : [], share: c.fitCorruption },
      },
      splits: describeSplits(c, { fit, eval: evalItems, split: streamed.split }, completion, instance, missing['instance-retrieval']),
      counts: streamed.counts,
      close: streamed.close,
    };
  } catch (e) {
    streamed.close();
    throw e;
  }
}

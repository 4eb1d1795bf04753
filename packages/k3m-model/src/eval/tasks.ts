/**
 * @file The three probed downstream tasks (instance retrieval, which fits nothing, is
 * instance-retrieval.ts). Each fits its probe once on its fit side (with a share of it
 * corrupted, see {@link mixedCorruption}), then scores the evaluation side under every grid
 * cell: the corruption is applied to the evaluation items, which are then shown to the model
 * through the task's view and encoded chunk by chunk.
 *
 * - Item classification: softmax probe on the full item representation, labels = category.
 * - Cross-modal retrieval between an item's TEXT side (its title, plus its knowledge for the
 *   model pretrained with knowledge: the product listing's text) and its IMAGE side (the image
 *   alone), in both directions (title->image: text queries, image gallery; image->title: image
 *   queries, text gallery). Each side is encoded with the other side's modalities hidden: the
 *   pooled title of an item encoded with its image has seen that image through co-attention, so
 *   it would match trivially. Knowledge is only ever on one side, so knowledge cannot match
 *   knowledge; both models see the same image side; the knowledge model's extra input is K3M's
 *   claim: knowledge standing in for a missing or noisy title. One pair of projections, fitted
 *   on the fit side by regularised CCA, serves both directions.
 * - Knowledge completion: the item is shown without its held-out pairs; a probe given the item's
 *   representation and the property scores every value of the value vocabulary.
 *
 * A model pretrained without knowledge is never shown knowledge (its views hide it), so its
 * missing-knowledge rows equal its clean row by construction.
 */
import { Rng } from '@k3m-kit/core';
import { applyCell, applyView, CORRUPTION_KINDS, FULL_VIEW, mixedCorruption, type CorruptionKindName, type GridCell, type View } from './grid.ts';
import { encodeItems, type RepresentationEncoder } from './encoder.ts';
import type { Modality } from '../data/corrupt.ts';
import { mapItems, type Items } from './items.ts';
import { accuracy, macroF1, rankMetrics, retrievalMetrics, type RankMetrics } from './metrics.ts';
import {
  fitStandardizer,
  matrixRows,
  similarity,
  standardize,
  ccaProjection,
  prepareCca,
  trainConditionalProbe,
  trainSoftmaxProbe,
  type ConditionalProbeOptions,
  type Matrix,
  type ProbeBudget,
  type ProjectionOptions,
} from './probe.ts';

/** Metric name to value for one model in one cell (`NaN` = undefined, see metrics.ts). */
export type CellMetrics = Record<string, number>;

export interface TaskContext {
  encoder: RepresentationEncoder;
  /** False for the model pretrained with `--modalities title,image`. */
  usesKnowledge: boolean;
  cells: readonly GridCell[];
  seed: number;
  /**
   * Kinds dealt over a share of the fit side while probes are fitted (see
   * {@link mixedCorruption}); empty = probes see clean inputs only.
   */
  fitCorruption: readonly CorruptionKindName[];
  /** Share of the fit items corrupted when `fitCorruption` is not empty. */
  fitCorruptionShare: number;
  /** Called after each cell, for progress. */
  onCell?: () => void;
}

const RANK_KS = [1, 5, 10] as const;

/** The view a model actually gets: a model without knowledge never sees any. */
export function modelView(view: View, usesKnowledge: boolean): View {
  return usesKnowledge ? view : { ...view, knowledge: false };
}

/** The fit side: the items with a share of them corrupted by `kinds` (same order and count). */
function fitSide(ctx: TaskContext, items: Items, kinds: readonly CorruptionKindName[] = ctx.fitCorruption): Items {
  return mixedCorruption(items, kinds, ctx.fitCorruptionShare, ctx.seed);
}

/**
 * The fit kinds a retrieval projection may see: the missing kinds that leave both of its sides
 * something of the item, as this model is shown it. A noisy item is a mismatched text/image pair,
 * and an item whose image side (a missing image) or whole text side (a missing title for the model
 * without knowledge) is blank pairs one constant row with every such item: a contrastive fit would
 * learn either as a match.
 * @example retrievalFitKinds(['missing-title', 'missing-image', 'noisy-title'], true) // ['missing-title']
 */
export function retrievalFitKinds(kinds: readonly CorruptionKindName[], usesKnowledge: boolean): CorruptionKindName[] {
  const textSide = (Object.keys(RETRIEVAL_SIDES.text) as Modality[]).filter((m) => RETRIEVAL_SIDES.text[m] && (usesKnowledge || m !== 'knowledge'));
  const imageSide = (Object.keys(RETRIEVAL_SIDES.image) as Modality[]).filter((m) => RETRIEVAL_SIDES.image[m]);
  return kinds.filter((k) => {
    const kind = CORRUPTION_KINDS[k];
    const gone = (m: Modality) => (kind.modalities as readonly Modality[]).includes(m);
    return kind.effect === 'missing' && !textSide.every(gone) && !imageSide.every(gone);
  });
}

/** The feature rows of the items as `view` shows them to this model, encoded chunk by chunk. */
export async function encodeView(ctx: TaskContext, items: Items, view: View): Promise<Matrix> {
  const v = modelView(view, ctx.usesKnowledge);
  return encodeItems(ctx.encoder, mapItems(items, (r) => applyView(r, v)));
}

/** The fit side (probes) and the evaluation side (scored under every cell) of a task. */
export interface ItemsSplit {
  fit: Items;
  eval: Items;
}

export interface TaskResult {
  /** Per grid cell id. */
  cells: Record<string, CellMetrics>;
  /** Facts about the fit: final training losses, label counts. */
  fit: Record<string, number>;
}

/** Item classification: accuracy and macro-F1 of a softmax probe on the category field. */
export async function classificationTask(ctx: TaskContext, split: ItemsSplit, budget: ProbeBudget): Promise<TaskResult> {
  const categories = (items: Items) => Array.from({ length: items.length }, (_, i) => items.info(i).category);
  const fitLabels = categories(split.fit);
  const classes = [...new Set(fitLabels)].sort();
  const index = new Map(classes.map((c, i) => [c, i]));
  const fitX = await encodeView(ctx, fitSide(ctx, split.fit), FULL_VIEW);
  const std = fitStandardizer(fitX);
  const labels = Int32Array.from(fitLabels, (c) => index.get(c)!);
  const clf = trainSoftmaxProbe(standardize(fitX, std), labels, classes.length, budget);
  const truth = categories(split.eval);
  const cells: Record<string, CellMetrics> = {};
  try {
    for (const cell of ctx.cells) {
      const { items } = applyCell(split.eval, cell, ctx.seed);
      const pred = [...clf.predict(standardize(await encodeView(ctx, items, FULL_VIEW), std))].map((k) => classes[k]!);
      cells[cell.id] = { accuracy: accuracy(pred, truth), macroF1: macroF1(pred, truth) };
      ctx.onCell?.();
    }
  } finally {
    clf.dispose();
  }
  return { cells, fit: { classes: classes.length, finalLoss: clf.finalLoss } };
}

/** The two sides of retrieval: what the model is shown of an item for each. */
export const RETRIEVAL_SIDES = Object.freeze({
  text: Object.freeze({ title: true, image: false, knowledge: true }),
  image: Object.freeze({ title: false, image: true, knowledge: false }),
} satisfies Record<string, View>);

function rankCells(m: RankMetrics, prefix: string): CellMetrics {
  const out: CellMetrics = {};
  for (const k of RANK_KS) out[`${prefix}rank@${k}`] = m.hitsAt[k]!;
  out[`${prefix}meanRank`] = m.meanRank;
  return out;
}

/**
 * Cross-modal retrieval over the evaluation items (item i's query matches gallery item i),
 * Rank@1/5/10 and mean rank for title->image and image->title, after a projection of the text
 * and image sides into one space fitted on the fit side (regularised CCA, {@link ccaProjection}).
 */
export async function retrievalTask(ctx: TaskContext, split: ItemsSplit, opts: ProjectionOptions): Promise<TaskResult> {
  const fitItems = fitSide(ctx, split.fit, retrievalFitKinds(ctx.fitCorruption, ctx.usesKnowledge));
  const t = await encodeView(ctx, fitItems, RETRIEVAL_SIDES.text);
  const i = await encodeView(ctx, fitItems, RETRIEVAL_SIDES.image);
  const chosen = chooseShrinkage(t, i, opts);
  const proj = ccaProjection(prepareCca(t, i), { dim: opts.dim, shrinkage: chosen.shrinkage });
  const cells: Record<string, CellMetrics> = {};
  for (const cell of ctx.cells) {
    const { items } = applyCell(split.eval, cell, ctx.seed);
    const pt = proj.projectQuery(await encodeView(ctx, items, RETRIEVAL_SIDES.text));
    const pi = proj.projectGallery(await encodeView(ctx, items, RETRIEVAL_SIDES.image));
    cells[cell.id] = pairRanks(pt, pi);
    ctx.onCell?.();
  }
  const heldOut = Object.fromEntries(chosen.heldOutMeanRank.map(([r, rank]) => [`heldOutMeanRank@shrinkage=${r}`, rank]));
  const top = Object.fromEntries(proj.strengths.slice(0, 3).map((c, k) => [`canonicalStrength${k + 1}`, c]));
  return { cells, fit: { pairs: t.rows, dims: proj.strengths.length, shrinkage: chosen.shrinkage, ...top, ...heldOut } };
}

/** Rank@K and mean rank of paired rows (query i matches gallery i), both directions. */
function pairRanks(pt: Matrix, pi: Matrix): CellMetrics {
  const identity = [...Array(pt.rows).keys()];
  return {
    ...rankCells(retrievalMetrics(similarity(pt, pi), pt.rows, pi.rows, identity, RANK_KS), 'title-to-image.'),
    ...rankCells(retrievalMetrics(similarity(pi, pt), pi.rows, pt.rows, identity, RANK_KS), 'image-to-title.'),
  };
}

/** Share of the fit pairs held out to choose the projection's shrinkage. */
export const SHRINKAGE_HELD_OUT_SHARE = 0.2;

/**
 * The projection's covariance shrinkage, chosen on fit pairs alone: each of `opts.shrinkages` is
 * fitted on a seeded 80% of the pairs and scored by the mean rank (both directions) of the other
 * 20%; the lowest wins (a tie goes to the stronger shrinkage). With fewer fit pairs than the two
 * sides have columns together, an unshrunk CCA matches its own pairs perfectly and generalises
 * to nothing; how much shrinkage a model's features need depends on them. One value: no choice made.
 */
export function chooseShrinkage(t: Matrix, i: Matrix, opts: ProjectionOptions): { shrinkage: number; heldOutMeanRank: [number, number][] } {
  const grid = opts.shrinkages;
  if (grid.length === 0) throw new RangeError('chooseShrinkage: no shrinkage to choose from');
  if (grid.length === 1) return { shrinkage: grid[0]!, heldOutMeanRank: [] };
  const order = Rng.from(opts.seed, 'projection-shrinkage', 'held-out').shuffle([...Array(t.rows).keys()]);
  const cut = Math.round(order.length * SHRINKAGE_HELD_OUT_SHARE);
  if (cut < 2 || order.length - cut < 2) {
    throw new RangeError(`chooseShrinkage: ${t.rows} fit pairs cannot spare ${Math.round(SHRINKAGE_HELD_OUT_SHARE * 100)}% held out (at least 2 each side); give one shrinkage`);
  }
  const held = order.slice(0, cut).sort((a, b) => a - b);
  const kept = order.slice(cut).sort((a, b) => a - b);
  const fit = prepareCca(matrixRows(t, kept), matrixRows(i, kept));
  const scored: [number, number][] = [];
  for (const shrinkage of grid) {
    const p = ccaProjection(fit, { dim: opts.dim, shrinkage });
    const m = pairRanks(p.projectQuery(matrixRows(t, held)), p.projectGallery(matrixRows(i, held)));
    scored.push([shrinkage, (m['title-to-image.meanRank']! + m['image-to-title.meanRank']!) / 2]);
  }
  const best = scored.reduce((a, b) => (b[1] < a[1] || (b[1] === a[1] && b[0] > a[0]) ? b : a));
  return { shrinkage: best[0], heldOutMeanRank: scored };
}

/** One (item, property) -> value question. */
export interface CompletionExample {
  /** Index into the records of its side. */
  record: number;
  relation: number;
  value: number;
  /** Other values known true for this (item, property), not counted as errors (filtered). */
  alsoTrue?: ReadonlySet<number>;
}

export interface CompletionSplit {
  numRelations: number;
  numValues: number;
  /** Items with the pairs asked about already removed from their knowledge (see completion.ts). */
  fitRecords: Items;
  fitExamples: readonly CompletionExample[];
  evalRecords: Items;
  evalExamples: readonly CompletionExample[];
}

/** Knowledge completion: Hits@1/10 (filtered) over the value vocabulary, and mean rank. */
export async function completionTask(ctx: TaskContext, split: CompletionSplit, opts: ConditionalProbeOptions): Promise<TaskResult> {
  const fitX = await encodeView(ctx, fitSide(ctx, split.fitRecords), FULL_VIEW);
  const std = fitStandardizer(fitX);
  const fitExamples = split.fitExamples;
  const rows = (x: Matrix, ex: readonly CompletionExample[]): Matrix => {
    const data = new Float32Array(ex.length * x.cols);
    ex.forEach((e, i) => data.set(x.data.subarray(e.record * x.cols, (e.record + 1) * x.cols), i * x.cols));
    return { data, rows: ex.length, cols: x.cols };
  };
  const rel = (ex: readonly CompletionExample[]) => Int32Array.from(ex, (e) => e.relation);
  const probe = trainConditionalProbe(
    standardize(rows(fitX, fitExamples), std),
    rel(fitExamples),
    split.numRelations,
    Int32Array.from(fitExamples, (e) => e.value),
    split.numValues,
    opts,
  );
  const cells: Record<string, CellMetrics> = {};
  try {
    for (const cell of ctx.cells) {
      const { items } = applyCell(split.evalRecords, cell, ctx.seed);
      const x = standardize(rows(await encodeView(ctx, items, FULL_VIEW), split.evalExamples), std);
      const s = probe.scores(x, rel(split.evalExamples));
      const scoreRows = split.evalExamples.map((_, i) => s.subarray(i * split.numValues, (i + 1) * split.numValues));
      const m = rankMetrics(scoreRows, split.evalExamples.map((e) => e.value), [1, 10], {
        exclude: split.evalExamples.map((e) => e.alsoTrue),
      });
      cells[cell.id] = { 'hits@1': m.hitsAt[1]!, 'hits@10': m.hitsAt[10]!, meanRank: m.meanRank };
      ctx.onCell?.();
    }
  } finally {
    probe.dispose();
  }
  return { cells, fit: { examples: fitExamples.length, finalLoss: probe.finalLoss } };
}

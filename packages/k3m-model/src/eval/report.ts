/**
 * @file The evaluation's outputs assembled: the models' outcomes merged into one
 * {@link EvalResults} (cells, chance levels, budgets, the protocol in words), and the stage
 * report `reports/k3m-model-evaluate.json`.
 */
import { finishReport, writeReport, type StageReportBase } from '@k3m-kit/core';
import { chanceLevels } from './chance.ts';
import { STAGE, type ResolvedEvaluateConfig } from './config.ts';
import type { ModelOutcome } from './model-run.ts';
import type { EvaluationPlan } from './plan.ts';
import { writeResults, type EvalResults, type ModelKey, type ResultCell } from './results.ts';

export interface EvaluateReport extends StageReportBase {
  evalDir: string;
  backend: string;
  results: EvalResults;
  files: string[];
}

/** How each task is set up, for readers of results.json alone. */
function protocol(c: ResolvedEvaluateConfig): Record<string, string> {
  return {
    classification:
      'softmax probe on the frozen feature row [pooled title; pooled image; pooled knowledge; item], fitted on the fit side, scored on the corrupted evaluation items; chance = majority class of the fit side',
    retrieval:
      'text side = title PLUS the item knowledge (knowledge model only), image side = the image alone, each encoded with the other side hidden; title->image: text queries over an image gallery, image->title the reverse; one pair of linear projections fitted on the fit side by regularised CCA (pretraining has no contrastive objective; canonical directions scaled by their correlations, cosine ranking), its covariance shrinkage chosen per model from ' + c.projectionShrinkages.join(', ') + ' by the mean rank of 20% held-out fit pairs; ranks use the expected rank under random tie-breaking',
    completion:
      'item shown without its held-out pairs; a one-hidden-layer probe given the item feature row and the property scores every value of the value vocabulary; filtered Hits@K',
    'instance-retrieval':
      "Product1M: queries = evaluation items with instance labels (one or more products), gallery = fit items showing exactly one product, relevant = sharing a label; nothing fitted: feature rows standardised with the gallery's statistics, cosine similarity; mAP@R and Prec@R over the first min(R, relevant, gallery) ranks, R = 10, 50, 100; a query without any relevant item scores 0 and is counted; ties broken by a seeded random order",
    corruption: 'applied to the evaluation side only (instance retrieval: the queries), exact rates, seeded, nested across rates; the model without knowledge never sees knowledge',
    fitCorruption:
      c.fitCorruption > 0
        ? `probes are fitted on the fit items with a seeded ${Math.round(c.fitCorruption * 100)}% of them corrupted at 100% (one kind each, dealt round-robin); the retrieval projection only with the missing kinds that leave both of its sides something of the item`
        : 'probes see clean fit items only',
  };
}

/** The outcomes of both models as one results object. */
export function assembleResults(p: EvaluationPlan, outcomes: readonly ModelOutcome[], backend: string, workers: number, seconds: number): EvalResults {
  const { c, cells } = p;
  const values = Object.fromEntries(
    cells.map((cell) => [cell.id, Object.fromEntries(outcomes.map((o) => [o.role, o.values[cell.id] ?? {}]))]),
  ) as Record<string, Record<ModelKey, Record<string, number | null>>>;
  const resultCells: ResultCell[] = cells.map((cell) => ({ id: cell.id, kind: cell.kind, rate: cell.rate, values: values[cell.id]! }));
  return {
    stage: STAGE,
    seed: c.seed,
    backend,
    models: Object.fromEntries(outcomes.map((o) => [o.role, o.model])) as EvalResults['models'],
    splits: p.splits,
    budgets: {
      ...p.budgets,
      workers,
      fits: Object.assign({}, ...outcomes.map((o) => o.fits)) as Record<string, unknown>,
      timingsSeconds: Object.assign({}, ...outcomes.map((o) => o.timings)) as Record<string, number>,
    },
    chance: chanceLevels(p),
    protocol: protocol(c),
    cells: resultCells,
    seconds,
  };
}

/** Writes `runs/<run>/eval/` and the stage report; returns the report. */
export async function writeEvaluation(p: EvaluationPlan, results: EvalResults, t0: number): Promise<EvaluateReport> {
  const files = await writeResults(p.evalDir, results);
  const report = finishReport({
    stage: STAGE,
    in: p.counts.in,
    written: p.counts.usable,
    rejected: Object.values(p.counts.rejectedByReason).reduce((a, b) => a + b, 0),
    rejectedByReason: p.counts.rejectedByReason,
    seconds: (performance.now() - t0) / 1000,
    evalDir: p.evalDir,
    backend: results.backend,
    results,
    files,
  });
  await writeReport(p.c.workDir, STAGE, report);
  return report;
}

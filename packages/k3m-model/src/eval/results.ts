/**
 * @file What `evaluate` writes under `runs/<name>/eval/`: `results.json` (every cell, every
 * metric, both models, with the splits, budgets and chance levels), `results.md` (one table per
 * task in the layout of the paper's tables: rows = corruption setting, columns = each metric
 * with and without knowledge) and one SVG per metric (`plots/<metric>.svg`: a panel per
 * corruption kind, the rate on x, one line per model).
 */
import { join } from 'node:path';
import { writeFileAtomic } from '@k3m-kit/core';
import { CORRUPTION_KINDS, type CorruptionKindName, type GridCell } from './grid.ts';
import { renderPlot, type Panel } from './plot.ts';

/** The two models compared in every cell. */
export const MODEL_KEYS = Object.freeze(['with-knowledge', 'without-knowledge'] as const);
export type ModelKey = (typeof MODEL_KEYS)[number];
export const MODEL_LABELS: Readonly<Record<ModelKey, string>> = Object.freeze({
  'with-knowledge': 'with knowledge',
  'without-knowledge': 'without knowledge',
});

export interface MetricInfo {
  /** Table heading. */
  label: string;
  /** Table and plot group. */
  table: string;
  /** A share in [0, 1] (printed as a percentage); else a rank. */
  share: boolean;
}

/** Every metric, in table order. */
export const METRICS: Readonly<Record<string, MetricInfo>> = Object.freeze({
  'classification.accuracy': { label: 'Acc', table: 'Item classification', share: true },
  'classification.macroF1': { label: 'macro-F1', table: 'Item classification', share: true },
  'title-to-image.rank@1': { label: 'R@1', table: 'Retrieval title -> image', share: true },
  'title-to-image.rank@5': { label: 'R@5', table: 'Retrieval title -> image', share: true },
  'title-to-image.rank@10': { label: 'R@10', table: 'Retrieval title -> image', share: true },
  'title-to-image.meanRank': { label: 'mean rank', table: 'Retrieval title -> image', share: false },
  'image-to-title.rank@1': { label: 'R@1', table: 'Retrieval image -> title', share: true },
  'image-to-title.rank@5': { label: 'R@5', table: 'Retrieval image -> title', share: true },
  'image-to-title.rank@10': { label: 'R@10', table: 'Retrieval image -> title', share: true },
  'image-to-title.meanRank': { label: 'mean rank', table: 'Retrieval image -> title', share: false },
  'completion.hits@1': { label: 'Hits@1', table: 'Knowledge completion', share: true },
  'completion.hits@10': { label: 'Hits@10', table: 'Knowledge completion', share: true },
  'completion.meanRank': { label: 'mean rank', table: 'Knowledge completion', share: false },
  'instance.mAP@10': { label: 'mAP@10', table: 'Instance retrieval', share: true },
  'instance.mAP@50': { label: 'mAP@50', table: 'Instance retrieval', share: true },
  'instance.mAP@100': { label: 'mAP@100', table: 'Instance retrieval', share: true },
  'instance.prec@10': { label: 'Prec@10', table: 'Instance retrieval', share: true },
  'instance.prec@50': { label: 'Prec@50', table: 'Instance retrieval', share: true },
  'instance.prec@100': { label: 'Prec@100', table: 'Instance retrieval', share: true },
});

/** One row: a grid cell and each model's metric values (`null` = undefined, e.g. no items). */
export interface ResultCell {
  id: string;
  kind: GridCell['kind'];
  rate: number;
  values: Record<ModelKey, Record<string, number | null>>;
}

export interface EvalResults {
  stage: 'k3m-model-evaluate';
  seed: number;
  backend: string;
  models: Record<ModelKey, { run: string; usesKnowledge: boolean; encoded: number; cacheHits: number }>;
  splits: Record<string, unknown>;
  budgets: Record<string, unknown>;
  /** What a random ranking or the majority class scores, per metric. */
  chance: Record<string, number | null>;
  /** Notes on how each task is set up, for readers of results.json alone. */
  protocol: Record<string, string>;
  cells: ResultCell[];
  seconds: number;
}

/** JSON has no NaN: undefined metrics are written as null. */
export const toJsonNumber = (v: number | undefined): number | null => (v === undefined || !Number.isFinite(v) ? null : v);

function cellLabel(c: ResultCell): string {
  if (c.kind === 'clean') return 'clean';
  return `${CORRUPTION_KINDS[c.kind as CorruptionKindName].label} ${Math.round(c.rate * 100)}%`;
}

function formatValue(v: number | null, share: boolean): string {
  if (v === null) return '–';
  return share ? (v * 100).toFixed(1) : v.toFixed(1);
}

/** The markdown tables, one per task. Shares are percentages; ranks are mean ranks (lower is better). */
export function renderTables(r: EvalResults): string {
  const tables = [...new Set(Object.values(METRICS).map((m) => m.table))];
  const out: string[] = [];
  for (const table of tables) {
    const names = Object.keys(METRICS).filter((k) => METRICS[k]!.table === table);
    if (!r.cells.some((c) => names.some((n) => c.values['with-knowledge'][n] !== undefined))) continue;
    out.push(`### ${table}`, '');
    const head = ['setting', ...names.flatMap((n) => [`${METRICS[n]!.label} w/ K`, `${METRICS[n]!.label} w/o K`])];
    out.push(`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i === 0 ? ':--' : '--:')).join('|')}|`);
    for (const c of r.cells) {
      const vals = names.flatMap((n) => MODEL_KEYS.map((m) => formatValue(c.values[m][n] ?? null, METRICS[n]!.share)));
      out.push(`| ${[cellLabel(c), ...vals].join(' | ')} |`);
    }
    const chance = names.map((n) => r.chance[n]).filter((v) => v !== undefined && v !== null);
    if (chance.length) {
      out.push('', `Chance: ${names.filter((n) => r.chance[n] != null).map((n) => `${METRICS[n]!.label} ${formatValue(r.chance[n]!, METRICS[n]!.share)}`).join(', ')}.`);
    }
    out.push('');
  }
  return out.join('\n');
}

/** The plot of one metric: a panel per corruption kind, clean as the 0% point of every panel. */
export function metricPlot(r: EvalResults, metric: string): string {
  const info = METRICS[metric]!;
  const clean = r.cells.find((c) => c.kind === 'clean');
  const kinds = [...new Set(r.cells.filter((c) => c.kind !== 'clean').map((c) => c.kind as CorruptionKindName))];
  const panels: Panel[] = kinds.map((kind) => ({
    title: CORRUPTION_KINDS[kind].label,
    series: MODEL_KEYS.map((m) => ({
      name: MODEL_LABELS[m],
      points: [...(clean ? [clean] : []), ...r.cells.filter((c) => c.kind === kind)].map((c) => [c.rate, c.values[m][metric] ?? NaN] as const),
    })),
  }));
  return renderPlot(panels, {
    title: `${info.table}: ${info.label}`,
    yLabel: info.share ? info.label : `${info.label} (lower is better)`,
    yRange: info.share ? [0, 1] : undefined,
  });
}

/** Plot file name of a metric: `title-to-image.rank@10` -> `title-to-image-rank10.svg`. */
export const plotFileName = (metric: string) => `${metric.replace(/[.]/g, '-').replace(/@/g, '')}.svg`;

/** Writes results.json, results.md and plots/*.svg atomically; returns the paths written. */
export async function writeResults(evalDir: string, r: EvalResults): Promise<string[]> {
  const paths: string[] = [];
  const put = async (rel: string, text: string) => {
    const p = join(evalDir, rel);
    await writeFileAtomic(p, text);
    paths.push(p);
  };
  for (const metric of Object.keys(METRICS)) {
    if (r.cells.some((c) => c.values['with-knowledge'][metric] !== undefined)) await put(join('plots', plotFileName(metric)), metricPlot(r, metric));
  }
  await put('results.md', `# K3M robustness: with vs without knowledge\n\n${renderTables(r)}`);
  // Written last: its presence says the evaluation finished.
  await put('results.json', JSON.stringify(r, null, 2) + '\n');
  return paths;
}

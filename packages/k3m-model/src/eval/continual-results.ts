/**
 * @file The outputs of continual pretraining (`runs/<name>/`): results.json (every run's
 * per-domain scores, the accuracy matrix, the measures), results.md (the matrix and the
 * measures as tables, fine-tuning next to joint training) and accuracy-matrix.svg (the matrix
 * as a heat map, the joint run's row below it).
 */
import { join } from 'node:path';
import { writeFileAtomic, type LedgerCounts } from '@k3m-kit/core';
import { continualMeasures, type ContinualMeasures } from './continual-metrics.ts';
import { DOMAIN_ACCURACY, type DomainScore } from './domain-retrieval.ts';
import { toJsonNumber } from './results.ts';

/** One trained and scored run: a stage (with its domain) or the joint reference. */
export interface RunOutcome {
  run: string;
  /** The stage's domain; absent for the joint run. */
  domain?: string;
  steps: number;
  trainRecords: number;
  records: LedgerCounts;
  trainSeconds: number;
  evalSeconds: number;
  scores: DomainScore[];
}

export interface ContinualResults {
  domains: readonly string[];
  /** Where the domains came from, in words. */
  domainSource: string;
  budget: string;
  seed: number;
  stages: readonly RunOutcome[];
  joint?: RunOutcome;
  /** Training records of domains not listed (not trained on), by domain. */
  otherDomains: Record<string, number>;
  withoutDomain: number;
  seconds: number;
}

export const RESULT_FILES = Object.freeze({ json: 'results.json', table: 'results.md', plot: 'accuracy-matrix.svg' });

/** a[i][j] from the stages' scores, columns in domain order. */
export function accuracyMatrix(r: Pick<ContinualResults, 'domains' | 'stages'>): number[][] {
  return r.stages.map((s) => r.domains.map((d) => s.scores.find((x) => x.domain === d)?.accuracy ?? NaN));
}

const rowOf = (r: ContinualResults, run: RunOutcome) => r.domains.map((d) => run.scores.find((x) => x.domain === d)?.accuracy ?? NaN);
/** Chance of the accuracy on each domain: Rank@10 over its held-out gallery. */
const chanceOf = (r: ContinualResults) => r.domains.map((d) => {
  const n = r.stages[0]?.scores.find((x) => x.domain === d)?.evalItems ?? 0;
  return n > 0 ? Math.min(10, n) / n : NaN;
});
const pct = (v: number) => (Number.isFinite(v) ? (100 * v).toFixed(1) : '–');
const mean = (xs: readonly number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;

/** The measures of the sequential run, when every stage ran. */
export function measuresOf(r: ContinualResults): ContinualMeasures | undefined {
  return r.stages.length === r.domains.length && r.stages.length > 0 ? continualMeasures(accuracyMatrix(r)) : undefined;
}

/** results.md: the matrix (percent), chance, and the measures of fine-tuning next to joint training. */
export function renderContinualTables(r: ContinualResults): string {
  const a = accuracyMatrix(r);
  const m = measuresOf(r);
  const lines = [
    `### Accuracy matrix a[i][j]: ${DOMAIN_ACCURACY.name}, %`,
    '',
    `Row i: the model after stage i (fine-tuning on the domains in order, no measure against forgetting); column j: domain j's held-out items. Budget: ${r.budget}; seed ${r.seed}; domains from ${r.domainSource}.`,
    '',
    `| after stage | ${r.domains.join(' | ')} | mean |`,
    `|:--|${r.domains.map(() => '--:|').join('')}--:|`,
    ...r.stages.map((s, i) => `| ${i + 1}: ${s.domain} | ${a[i]!.map(pct).join(' | ')} | ${pct(mean(a[i]!))} |`),
    ...(r.joint ? [`| joint (all domains) | ${rowOf(r, r.joint).map(pct).join(' | ')} | ${pct(mean(rowOf(r, r.joint)))} |`] : []),
    `| chance | ${chanceOf(r).map(pct).join(' | ')} | ${pct(mean(chanceOf(r)))} |`,
    '',
    '### Measures, %',
    '',
    '| training | final average accuracy | average forgetting | backward transfer | steps | training s | scoring s |',
    '|:--|--:|--:|--:|--:|--:|--:|',
    `| fine-tuning (domain after domain) | ${pct(m?.finalAverage ?? NaN)} | ${pct(m?.forgetting ?? NaN)} | ${pct(m?.backwardTransfer ?? NaN)} | ${r.stages.reduce((n, s) => n + s.steps, 0)} | ${r.stages.reduce((n, s) => n + s.trainSeconds, 0).toFixed(0)} | ${r.stages.reduce((n, s) => n + s.evalSeconds, 0).toFixed(0)} |`,
    ...(r.joint ? [`| joint training (upper reference) | ${pct(mean(rowOf(r, r.joint)))} | – | – | ${r.joint.steps} | ${r.joint.trainSeconds.toFixed(0)} | ${r.joint.evalSeconds.toFixed(0)} |`] : []),
    '',
  ];
  return lines.join('\n');
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** The matrix as an SVG heat map (white 0 to dark blue 1), a value in every cell, the joint row apart below. */
export function accuracyMatrixSvg(r: ContinualResults): string {
  const rows: { label: string; values: number[] }[] = r.stages.map((s, i) => ({ label: `after stage ${i + 1} (${s.domain})`, values: accuracyMatrix(r)[i]! }));
  if (r.joint) rows.push({ label: 'joint training', values: rowOf(r, r.joint) });
  const cw = 110;
  const ch = 40;
  const left = 190;
  const top = 70;
  const gap = (i: number) => (r.joint && i === rows.length - 1 ? 12 : 0);
  const title = `Accuracy matrix a[i][j]: ${DOMAIN_ACCURACY.name}`;
  // Room for the title at about 8 px a character (14 px bold).
  const width = Math.max(left + cw * r.domains.length + 20, 8 * title.length + 20);
  const height = top + ch * rows.length + 12 + 30;
  const fill = (v: number) => {
    if (!Number.isFinite(v)) return '#dddddd';
    const t = Math.max(0, Math.min(1, v));
    const c = (a: number, b: number) => Math.round(a + (b - a) * t);
    return `rgb(${c(255, 8)},${c(255, 48)},${c(255, 107)})`;
  };
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="18" text-anchor="middle" font-size="14" font-weight="bold">${esc(title)}</text>`,
    `<text x="${left + (cw * r.domains.length) / 2}" y="${top - 28}" text-anchor="middle">evaluated on domain j</text>`,
    ...r.domains.map((d, j) => `<text x="${left + cw * j + cw / 2}" y="${top - 8}" text-anchor="middle">${esc(d)}</text>`),
  ];
  rows.forEach((row, i) => {
    const y = top + ch * i + gap(i);
    out.push(`<text x="${left - 8}" y="${y + ch / 2 + 4}" text-anchor="end">${esc(row.label)}</text>`);
    row.values.forEach((v, j) => {
      const x = left + cw * j;
      out.push(`<rect x="${x}" y="${y}" width="${cw}" height="${ch}" fill="${fill(v)}" stroke="white"/>`);
      out.push(`<text x="${x + cw / 2}" y="${y + ch / 2 + 4}" text-anchor="middle" fill="${Number.isFinite(v) && v > 0.5 ? 'white' : 'black'}">${pct(v)}%</text>`);
    });
  });
  out.push(`<text x="${left}" y="${height - 10}">${esc(`percent; ${r.budget}`)}</text>`, '</svg>', '');
  return out.join('\n');
}

/** Writes results.json, results.md and the plot into `dir`; returns the paths. */
export async function writeContinualResults(dir: string, r: ContinualResults): Promise<string[]> {
  const m = measuresOf(r);
  const json = {
    ...r,
    accuracy: DOMAIN_ACCURACY,
    matrix: accuracyMatrix(r).map((row) => row.map(toJsonNumber)),
    measures: m && { finalAverage: toJsonNumber(m.finalAverage), forgetting: toJsonNumber(m.forgetting), backwardTransfer: toJsonNumber(m.backwardTransfer) },
    jointAverage: r.joint ? toJsonNumber(mean(rowOf(r, r.joint))) : null,
    chance: chanceOf(r).map(toJsonNumber),
  };
  const paths = [join(dir, RESULT_FILES.json), join(dir, RESULT_FILES.table), join(dir, RESULT_FILES.plot)];
  await writeFileAtomic(paths[0]!, JSON.stringify(json, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2) + '\n');
  await writeFileAtomic(paths[1]!, renderContinualTables(r));
  await writeFileAtomic(paths[2]!, accuracyMatrixSvg(r));
  return paths;
}

/** The stage report of a continual run (`reports/k3m-model-continual-<name>.json`) and its table rows. */
export function continualReport(name: string, r: ContinualResults, outDir: string): { report: Record<string, unknown>; rows: [string, string | number][] } {
  const m = measuresOf(r);
  const runs = [...r.stages, ...(r.joint ? [r.joint] : [])].map((s) => ({ run: s.run, domain: s.domain ?? 'all', steps: s.steps, ...s.records, trainSeconds: s.trainSeconds, evalSeconds: s.evalSeconds }));
  const report = {
    stage: `k3m-model-continual-${name}`,
    domains: r.domains,
    domainSource: r.domainSource,
    budget: r.budget,
    runs,
    otherDomains: r.otherDomains,
    withoutDomain: r.withoutDomain,
    finalAverage: toJsonNumber(m?.finalAverage),
    forgetting: toJsonNumber(m?.forgetting),
    backwardTransfer: toJsonNumber(m?.backwardTransfer),
    jointAverage: r.joint ? toJsonNumber(mean(rowOf(r, r.joint))) : null,
    reconciles: runs.every((x) => x.reconciles),
    seconds: r.seconds,
    out: outDir,
  };
  const rows: [string, string | number][] = [
    ...runs.map((x): [string, string] => [`${x.run} (${x.domain})`, `${x.steps} steps, ${x.written}/${x.in} records, ${x.trainSeconds.toFixed(0)} s + ${x.evalSeconds.toFixed(0)} s scoring`]),
    ['final average accuracy', `${pct(m?.finalAverage ?? NaN)}%`],
    ['average forgetting', `${pct(m?.forgetting ?? NaN)}%`],
    ['backward transfer', `${pct(m?.backwardTransfer ?? NaN)}%`],
    ['joint training average', r.joint ? `${pct(mean(rowOf(r, r.joint)))}%` : '–'],
    ['seconds', Number(r.seconds.toFixed(1))],
    ['results', join(outDir, RESULT_FILES.table)],
  ];
  return { report, rows };
}

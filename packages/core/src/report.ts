/**
 * @file The end-of-stage summary: `reports/<stage>.json` (written last, atomically: it is also
 * the "this run finished" marker) and a readable table for people.
 */
import { join } from 'node:path';
import { writeFileAtomic } from './atomic.ts';

/** Fields every stage report carries; stages add their own beside them. */
export interface StageReportBase {
  stage: string;
  /** Records read. */
  in: number;
  /** Records written to the output. */
  written: number;
  /** Records rejected, in total and by reason. */
  rejected: number;
  rejectedByReason: Record<string, number>;
  /** `in === written + rejected`; a report that does not reconcile is a bug. */
  reconciles: boolean;
  seconds: number;
  [extra: string]: unknown;
}

/** Fills `reconciles` from the counts. */
export function finishReport<T extends { in: number; written: number; rejected: number }>(r: T): T & { reconciles: boolean } {
  return { ...r, reconciles: r.in === r.written + r.rejected };
}

/** Writes `<workDir>/reports/<name>.json` atomically and returns its path. */
export async function writeReport(workDir: string, name: string, report: object): Promise<string> {
  const path = join(workDir, 'reports', `${name}.json`);
  await writeFileAtomic(path, JSON.stringify(report, null, 2) + '\n');
  return path;
}

export type TableRow = readonly [label: string, value: string | number | boolean];

/**
 * A two-column text table.
 * @example formatTable('build-data', [['in', 10], ['written', 9]])
 */
export function formatTable(title: string, rows: readonly TableRow[]): string {
  const cells = rows.map(([k, v]) => [k, typeof v === 'number' ? fmtNum(v) : String(v)] as const);
  const w0 = Math.max(title.length, ...cells.map(([k]) => width(k)));
  const w1 = Math.max(5, ...cells.map(([, v]) => width(v)));
  const line = `+${'-'.repeat(w0 + 2)}+${'-'.repeat(w1 + 2)}+`;
  const out = [line, `| ${pad(title, w0)} | ${pad('', w1)} |`, line];
  for (const [k, v] of cells) out.push(`| ${pad(k, w0)} | ${padStart(v, w1)} |`);
  out.push(line);
  return out.join('\n');
}

function fmtNum(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(v < 10 ? 3 : 1);
}

/** Display width: CJK characters take two columns in a terminal. */
function width(s: string): number {
  let w = 0;
  for (const ch of s) w += /[\u1100-\u115f\u2e80-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6]/u.test(ch) ? 2 : 1;
  return w;
}
const pad = (s: string, n: number) => s + ' '.repeat(Math.max(0, n - width(s)));
const padStart = (s: string, n: number) => ' '.repeat(Math.max(0, n - width(s))) + s;

/** Prints the report: JSON on stdout with `--json`, else the table (on stderr when quiet is off). */
export function printReport(report: object, table: string, opts: { json?: boolean; quiet?: boolean }): void {
  if (opts.json) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  else if (!opts.quiet) process.stdout.write(table + '\n');
}

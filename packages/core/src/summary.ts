/**
 * @file The pipeline's closing summary: every stage report under `<workDir>/reports/`, one row
 * each (in, written, rejected, skipped, reconciles, seconds), in the order the stages finished.
 * Reports are read as the common fields every stage writes; a file that is not a stage report is
 * listed as unreadable rather than skipped.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';

const ReportFields = z.object({
  stage: z.string(),
  in: z.number(),
  written: z.number(),
  rejected: z.number(),
  skippedByReason: z.record(z.string(), z.number()).optional(),
  reconciles: z.boolean(),
  seconds: z.number().optional(),
});

export interface StageSummary {
  /** Report file name without `.json`. */
  name: string;
  path: string;
  stage?: string;
  in?: number;
  written?: number;
  rejected?: number;
  skipped?: number;
  reconciles?: boolean;
  seconds?: number;
  /** Why the file could not be read as a stage report. */
  problem?: string;
  /** When the report was written (the stage finished). */
  finished: number;
}

/** The stage reports of a work directory, oldest first; `[]` when there are none. */
export async function readStageReports(workDir: string): Promise<StageSummary[]> {
  const dir = join(workDir, 'reports');
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith('.json'));
  } catch {
    return [];
  }
  const out: StageSummary[] = [];
  for (const file of names) {
    const path = join(dir, file);
    const finished = (await stat(path)).mtimeMs;
    const name = file.slice(0, -'.json'.length);
    let parsed;
    try {
      parsed = ReportFields.safeParse(JSON.parse(await readFile(path, 'utf8')));
    } catch (e) {
      out.push({ name, path, finished, problem: `not JSON: ${(e as Error).message}` });
      continue;
    }
    if (!parsed.success) {
      out.push({ name, path, finished, problem: `not a stage report: ${parsed.error.issues[0]?.message ?? 'bad fields'}` });
      continue;
    }
    const r = parsed.data;
    const skipped = Object.values(r.skippedByReason ?? {}).reduce((a, b) => a + b, 0);
    out.push({ name, path, finished, stage: r.stage, in: r.in, written: r.written, rejected: r.rejected, skipped, reconciles: r.reconciles, seconds: r.seconds });
  }
  return out.sort((a, b) => a.finished - b.finished || (a.name < b.name ? -1 : 1));
}

/** A table of stage summaries, one row per report. */
export function formatStageTable(rows: readonly StageSummary[]): string {
  const head = ['stage', 'in', 'written', 'rejected', 'skipped', 'reconciles', 'seconds'];
  const cells = rows.map((r) =>
    r.problem
      ? [r.name, '-', '-', '-', '-', r.problem, '-']
      : [r.name, String(r.in), String(r.written), String(r.rejected), String(r.skipped ?? 0), r.reconciles ? 'yes' : 'NO', r.seconds === undefined ? '-' : r.seconds.toFixed(1)],
  );
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => c.map((x, i) => (i === 0 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)].join('\n');
}

/**
 * The acceptance test on the embedded sample, through the real pipeline: the two
 * pretrained runs (`runs/k3m-small` with knowledge, `runs/k3m-small-noknow` with
 * `--modalities title,image`, default budget and seed) of a work directory that
 * `nx run k3m-model:evaluate` produced (default `<repo>/work`; `K3M_EVAL_WORK_DIR` overrides).
 * Pretraining both models takes minutes, so the test reuses them and skips, saying why, when they
 * are absent. It runs the real evaluation (real encoders, real probes) on a reduced grid (clean
 * and 100% missing title) into a temporary directory, leaving the work directory's results alone.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { evaluate, type EvaluateReport } from '../src/eval/evaluate.ts';
import { LMDB_FILES } from '../src/train/records.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const work = process.env.K3M_EVAL_WORK_DIR ?? join(repoRoot, 'work');
const needed = [
  LMDB_FILES.train,
  LMDB_FILES.validation,
  join('runs', 'k3m-small', 'trainer-state.json'),
  join('runs', 'k3m-small-noknow', 'trainer-state.json'),
].map((p) => join(work, p));
const missing = needed.filter((p) => !existsSync(p));
if (missing.length) {
  console.warn(`eval-sample: SKIPPED, no pretrained embedded sample in ${work} (missing ${missing.join(', ')}); run \`npx nx run k3m-model:evaluate\` or set K3M_EVAL_WORK_DIR`);
}

const out = mkdtempSync(join(tmpdir(), 'k3m-eval-sample-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe.skipIf(missing.length > 0)('evaluation on the embedded sample after the default pretraining budget', () => {
  let report: EvaluateReport;
  const cell = (id: string) => report.results.cells.find((c) => c.id === id)!.values;

  it('runs', async () => {
    report = await evaluate({ workDir: work, outDir: out, tasks: ['classification', 'retrieval'], kinds: ['missing-title'], rates: [0, 1], quiet: true });
    expect(report.results.cells.map((c) => c.id)).toEqual(['clean', 'missing-title@100']);
  }, 600_000);

  it('retrieves well above chance with clean inputs (Rank@10 at least 3x chance, both directions, both models)', () => {
    const chance = report.results.chance['title-to-image.rank@10']!;
    const clean = cell('clean');
    console.log(
      `eval-sample: gallery ${JSON.stringify((report.results.splits.items as { eval: unknown }).eval)}; ` +
        `Rank@10 chance ${(chance * 100).toFixed(1)}%, clean title->image w/ K ${pct(clean['with-knowledge']['title-to-image.rank@10'])} w/o K ${pct(clean['without-knowledge']['title-to-image.rank@10'])}, ` +
        `image->title w/ K ${pct(clean['with-knowledge']['image-to-title.rank@10'])} w/o K ${pct(clean['without-knowledge']['image-to-title.rank@10'])}`,
    );
    for (const m of ['with-knowledge', 'without-knowledge'] as const) {
      for (const d of ['title-to-image', 'image-to-title']) expect(clean[m][`${d}.rank@10`]!, `${m} ${d}`).toBeGreaterThan(3 * chance);
    }
  });

  it('classifies better with knowledge than without when every title is missing', () => {
    const gone = cell('missing-title@100');
    console.log(
      `eval-sample: classification accuracy at 100% missing title: w/ K ${pct(gone['with-knowledge']['classification.accuracy'])}, w/o K ${pct(gone['without-knowledge']['classification.accuracy'])} ` +
        `(clean: ${pct(cell('clean')['with-knowledge']['classification.accuracy'])} / ${pct(cell('clean')['without-knowledge']['classification.accuracy'])}; majority class ${pct(report.results.chance['classification.accuracy'])})`,
    );
    expect(gone['with-knowledge']['classification.accuracy']!).toBeGreaterThan(gone['without-knowledge']['classification.accuracy']!);
  });
});

function pct(v: number | null | undefined): string {
  return v === null || v === undefined ? '–' : `${(v * 100).toFixed(1)}%`;
}

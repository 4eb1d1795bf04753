/**
 * The acceptance test on the embedded sample, through the real pipeline: it runs
 * `nx run k3m-model:evaluate` (sample, build-data, kg-triples, region features, LMDB, both
 * pretrainings at the default budget and seed, the full evaluation grid) into `<repo>/work`.
 * On a fresh clone that is the whole pipeline (about 8 minutes on 2 cores); afterwards nx
 * serves it from its cache. `K3M_EVAL_WORK_DIR` points the checks at another evaluated work dir.
 *
 * "Well above chance" is a significance bound, not a ratio: over a gallery of n items, hits at
 * Rank@10 under chance are Binomial(n, p) with p = chance Rank@10; the test requires the
 * measured hits to lie at least 3 standard deviations above n·p (one-sided p < 0.0014).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const work = process.env.K3M_EVAL_WORK_DIR ?? join(repoRoot, 'work');

interface Results {
  chance: Record<string, number>;
  splits: { items: { eval: { items: number } } };
  cells: { id: string; values: Record<'with-knowledge' | 'without-knowledge', Record<string, number | null>> }[];
}

let results: Results;
const cell = (id: string) => results.cells.find((c) => c.id === id)!.values;
const pct = (v: number | null | undefined) => (v === null || v === undefined ? '–' : `${(v * 100).toFixed(1)}%`);

beforeAll(() => {
  if (!process.env.K3M_EVAL_WORK_DIR) {
    const run = spawnSync('npx', ['nx', 'run', 'k3m-model:evaluate', '--output-style=static'], {
      cwd: repoRoot,
      env: { ...process.env, NX_DAEMON: 'false', NX_NO_CLOUD: 'true', NX_TUI: 'false' },
      encoding: 'utf8',
      maxBuffer: 64 << 20,
    });
    if (run.status !== 0) throw new Error(`nx run k3m-model:evaluate failed (${run.status}):\n${(run.stdout + run.stderr).slice(-4000)}`);
  }
  results = JSON.parse(readFileSync(join(work, 'runs', 'k3m-small', 'eval', 'results.json'), 'utf8')) as Results;
}, 1_500_000);

describe('evaluation on the embedded sample after the default pretraining budget', () => {
  it('retrieves well above chance with clean inputs (Rank@10, both directions, the K3M model)', () => {
    const n = results.splits.items.eval.items;
    const clean = cell('clean');
    for (const d of ['title-to-image', 'image-to-title']) {
      const p = results.chance[`${d}.rank@10`]!;
      const withK = clean['with-knowledge'][`${d}.rank@10`]!;
      const withoutK = clean['without-knowledge'][`${d}.rank@10`]!;
      const z = (withK * n - n * p) / Math.sqrt(n * p * (1 - p));
      console.log(
        `eval-sample: ${d} Rank@10 over ${n} items: chance ${pct(p)}, with knowledge ${pct(withK)} (${(withK / p).toFixed(1)}x chance, z = ${z.toFixed(1)}), without knowledge ${pct(withoutK)}`,
      );
      expect(z, `${d}: z-score of Rank@10 hits above chance`).toBeGreaterThanOrEqual(3);
    }
  });

  it('classifies better with knowledge than without when every title is missing', () => {
    const gone = cell('missing-title@100');
    console.log(
      `eval-sample: classification accuracy at 100% missing title: with knowledge ${pct(gone['with-knowledge']['classification.accuracy'])}, without ${pct(gone['without-knowledge']['classification.accuracy'])} ` +
        `(clean ${pct(cell('clean')['with-knowledge']['classification.accuracy'])} / ${pct(cell('clean')['without-knowledge']['classification.accuracy'])}; chance ${pct(results.chance['classification.accuracy'])})`,
    );
    expect(gone['with-knowledge']['classification.accuracy']!).toBeGreaterThan(gone['without-knowledge']['classification.accuracy']!);
  });
});

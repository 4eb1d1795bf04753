/**
 * `nx run k3m-model:evaluate-instance`'s own steps (project.json) on a smaller Product1M-layout
 * sample in a temporary work directory: make-sample --format product1m, build-data, kg-triples,
 * region features, LMDB, both pretrainings, `evaluate --task instance-retrieval`. Budgets are cut
 * so it runs in about a minute (48 train and 12 dev items, the small detector, 2 pretraining
 * steps, the missing-title grid at 0 and 100%); the target itself runs the default budget.
 *
 * Checked: the queries and the gallery are what the sample holds (counted here from its list
 * files), multi-product queries are among them, every cell has every metric in [0, 1], and with
 * clean queries instance retrieval beats twice the chance level (the sample's listings of one
 * product share brand and series words and the product's look, so even a barely trained model
 * finds them).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runStep, targetSteps } from './nx-target-steps.ts';

const TARGET_WORK = 'work-product1m';
let root: string;
let work: string;

interface Results {
  chance: Record<string, number>;
  splits: { instance: { queries: number; gallery: number; multiProductQueries: number } };
  cells: { id: string; values: Record<'with-knowledge' | 'without-knowledge', Record<string, number | null>> }[];
}
let results: Results;

/** The target's steps with tiny budgets. */
function tinySteps(): string[] {
  return targetSteps('evaluate-instance').map((s) => {
    const step = s.replaceAll(TARGET_WORK, work);
    if (step.includes('make-sample.js')) return step.replace(/--train \d+ --valid \d+/, '--train 48 --valid 12');
    if (step.includes('region-features.js extract')) return `${step} --preset small-c4 --image-size 600`;
    if (step.includes('k3m-model.js pretrain')) return `${step} --steps 2`;
    if (step.includes('k3m-model.js evaluate')) return `${step} --kinds missing-title --rates 0,100`;
    return step;
  });
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'k3m-evaluate-instance-'));
  work = join(root, 'work');
  const steps = tinySteps();
  expect(steps[0]).toBe(`rm -rf ${work}`);
  for (const step of steps) runStep(step);
  results = JSON.parse(await readFile(join(work, 'runs', 'k3m-small', 'eval', 'results.json'), 'utf8')) as Results;
}, 600_000);
afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

/** Lines of a Product1M list and their labels, read here from the sample's bytes. */
async function labelsOf(file: string): Promise<string[][]> {
  const text = await readFile(join(work, 'raw', file), 'utf8');
  return text.split('\n').filter(Boolean).map((l) => l.replace(/\r$/, '').split('#####')[4]?.split('#;#').filter(Boolean) ?? []);
}

describe('k3m-model:evaluate-instance on a Product1M-layout sample', () => {
  it('queries every dev item, several of them multi-product, against the single-product train items', async () => {
    const dev = await labelsOf('product1m_dev_ossurl_v2.txt');
    const train = await labelsOf('product1m_train_ossurl_v2.txt');
    const { instance } = results.splits;
    expect(instance.queries).toBe(dev.length);
    expect(instance.multiProductQueries).toBe(dev.filter((l) => l.length > 1).length);
    expect(instance.multiProductQueries).toBeGreaterThan(0);
    // The gallery: single-product train lines that survived build-data's planted faults.
    const single = train.filter((l) => l.length === 1).length;
    expect(instance.gallery).toBeGreaterThan(single / 2);
    expect(instance.gallery).toBeLessThanOrEqual(single);
  });

  it('scores every cell and metric for both models within [0, 1]', () => {
    expect(results.cells.map((c) => c.id)).toEqual(['clean', 'missing-title@100']);
    for (const c of results.cells) {
      for (const model of ['with-knowledge', 'without-knowledge'] as const) {
        for (const r of [10, 50, 100]) {
          for (const m of [`instance.mAP@${r}`, `instance.prec@${r}`]) {
            const v = c.values[model][m];
            expect(v, `${c.id} ${model} ${m}`).not.toBeNull();
            expect(v!).toBeGreaterThanOrEqual(0);
            expect(v!).toBeLessThanOrEqual(1);
          }
        }
      }
    }
  });

  it('finds a query\'s products at more than twice chance with clean queries (mAP@10)', () => {
    const clean = results.cells.find((c) => c.id === 'clean')!.values;
    const chance = results.chance['instance.mAP@10']!;
    console.log(`evaluate-instance: clean mAP@10 ${clean['with-knowledge']['instance.mAP@10']} / ${clean['without-knowledge']['instance.mAP@10']} (with / without knowledge), chance ${chance}`);
    expect(clean['with-knowledge']['instance.mAP@10']!).toBeGreaterThan(2 * chance);
    expect(clean['without-knowledge']['instance.mAP@10']!).toBeGreaterThan(2 * chance);
  });
});

/**
 * `nx run k3m-model:continual`'s command (project.json) on a smaller K3M sample in a temporary
 * work directory: the sample (with its domains.json), build-data, kg-triples, region features
 * (small detector, small images) and LMDB as library calls, then the target's `pretrain
 * --domains ...` with its work directory replaced and tiny budgets (2 steps per stage, a
 * 20-step retrieval projection on 8 training items per domain); the target runs the default
 * budget. About two minutes on 2 cores.
 *
 * Checked, against what the test counts itself: each stage trained on exactly its domain's
 * training records (the LMDB's records whose category the map file puts in that domain) and
 * started from the previous stage's checkpoint (its optimizer step counters carry on); the
 * joint run trained on all of them with the stages' steps summed; the matrix is 3 x 3 in [0, 1]
 * and the measures are the continual-metrics functions of it; the table, the plot and the
 * report are written; `--resume` keeps every finished run and reproduces the results.
 */
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WHOLE } from '@k3m-kit/core';
import { continualMeasures, decodeDomainMap } from '@k3m-kit/k3m-model';
import { build } from '@k3m-kit/kg-triples';
import { convert, lmdbPath, RecordReader } from '@k3m-kit/lmdb-writer';
import { buildData } from '@k3m-kit/raw-ingest';
import { extract } from '@k3m-kit/region-features';
import { makeSample } from '@k3m-kit/tools';
import { runStep, targetSteps } from './nx-target-steps.ts';

const NAME = 'k3m-continual';
let root: string;
let work: string;
let command: string;
let firstOutput: string;
let domains: string[];

interface Results {
  domains: string[];
  matrix: (number | null)[][];
  measures: { finalAverage: number | null; forgetting: number | null; backwardTransfer: number | null };
  jointAverage: number | null;
  stages: { run: string; domain: string; steps: number; trainRecords: number }[];
  joint: { run: string; steps: number; trainRecords: number };
}
const readJson = async <T>(...p: string[]) => JSON.parse(await readFile(join(...p), 'utf8')) as T;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'k3m-continual-'));
  work = join(root, 'work');
  await makeSample({ out: join(work, 'raw'), train: 90, valid: 45 });
  await buildData({ workDir: work, input: [`${join(work, 'raw', 'train.tsv')}:train`, `${join(work, 'raw', 'valid.tsv')}:val`], quiet: true });
  await build({ workDir: work, quiet: true });
  await extract({ workDir: work, shard: WHOLE, quiet: true, preset: 'small-c4', seed: 0, rule: 'k3m', form: 'k3m', backend: 'wasm', prefetch: 2, minSize: 48, maxSize: 64 });
  await convert({ workDir: work, shard: WHOLE, missingImage: 'keep', fp16: false, clsProb: true, batchRecords: 64, batchMb: 64, verifySample: 4, quiet: true });
  const steps = targetSteps('continual');
  expect(steps).toHaveLength(1);
  domains = /--domains (\S+)/.exec(steps[0]!)![1]!.split(',');
  // The target's `work` directory (as --work-dir and inside --domain-map) becomes the test's.
  command = `${steps[0]!.replace(/(?<=\s)work(?=[/\s]|$)/g, work)} --steps 2 --eval-fit-items 8`;
  expect(command).toContain(`--domain-map ${join(work, 'raw', 'domains.json')}`);
  firstOutput = runStep(command.replace(' --quiet', ''));
}, 600_000);
afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

describe('k3m-model:continual on the K3M sample', () => {
  it("trains each stage on exactly its domain's records, the joint run on all of them", async () => {
    const map = decodeDomainMap(await readFile(join(work, 'raw', 'domains.json'), 'utf8'));
    const perDomain = new Map<string, number>();
    const reader = RecordReader.open(lmdbPath(work, 'train'));
    for (const r of reader) perDomain.set(map.get(r.category)!, (perDomain.get(map.get(r.category)!) ?? 0) + 1);
    reader.close();
    const r = await readJson<Results>(work, 'runs', NAME, 'results.json');
    expect(r.stages.map((s) => s.domain)).toEqual(domains);
    for (const [i, d] of domains.entries()) {
      const cfg = await readJson<{ trainRecords: number; totalSteps: number }>(work, 'runs', `${NAME}.stage-${i + 1}`, 'run-config.json');
      expect(cfg.trainRecords, d).toBe(perDomain.get(d));
      expect(r.stages[i]!.steps).toBe(2);
    }
    const joint = await readJson<{ trainRecords: number }>(work, 'runs', `${NAME}.joint`, 'run-config.json');
    expect(joint.trainRecords).toBe(domains.reduce((n, d) => n + perDomain.get(d)!, 0));
    expect(r.joint.steps).toBe(2 * domains.length);
  });

  it("starts each stage from the previous stage's checkpoint", async () => {
    for (const [i] of domains.entries()) {
      const state = await readJson<{ step: number; adamSteps: Record<string, number> }>(work, 'runs', `${NAME}.stage-${i + 1}`, 'trainer-state.json');
      expect(state.step).toBe(2);
      // The optimizer's step counters carry over: 2 steps per stage so far.
      expect(new Set(Object.values(state.adamSteps))).toEqual(new Set([2 * (i + 1)]));
    }
  });

  it('writes the accuracy matrix, its measures, the joint reference, the table, the plot and a reconciling report', async () => {
    const r = await readJson<Results>(work, 'runs', NAME, 'results.json');
    expect(r.matrix).toHaveLength(domains.length);
    for (const row of r.matrix) {
      expect(row).toHaveLength(domains.length);
      for (const v of row) {
        expect(v).not.toBeNull();
        expect(v!).toBeGreaterThanOrEqual(0);
        expect(v!).toBeLessThanOrEqual(1);
      }
    }
    const m = continualMeasures(r.matrix as number[][]);
    expect(r.measures.finalAverage).toBeCloseTo(m.finalAverage, 12);
    expect(r.measures.forgetting).toBeCloseTo(m.forgetting, 12);
    expect(r.measures.backwardTransfer).toBeCloseTo(m.backwardTransfer, 12);
    expect(r.jointAverage).not.toBeNull();
    const md = await readFile(join(work, 'runs', NAME, 'results.md'), 'utf8');
    for (const d of domains) expect(md).toContain(d);
    expect(md).toContain('| joint (all domains) |');
    expect(md).toContain(`| ${((100 * r.matrix[2]![0]!) as number).toFixed(1)} |`);
    const svg = await readFile(join(work, 'runs', NAME, 'accuracy-matrix.svg'), 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    // One cell per (row, domain), the joint row included, plus the background.
    expect(svg.match(/<rect /g)).toHaveLength(1 + (domains.length + 1) * domains.length);
    const report = await readJson<{ reconciles: boolean; runs: { in: number }[] }>(work, 'reports', `k3m-model-continual-${NAME}.json`);
    expect(report.reconciles).toBe(true);
    expect(report.runs).toHaveLength(domains.length + 1);
    expect(firstOutput).toContain('final average accuracy');
  });

  it('--resume keeps every finished run and gives the same results', async () => {
    const before = await readFile(join(work, 'runs', NAME, 'results.json'), 'utf8');
    const model = join(work, 'runs', `${NAME}.stage-2`, 'model.safetensors');
    const mtime = (await stat(model)).mtimeMs;
    const out = runStep(`${command.replace(' --quiet', '')} --resume`);
    for (const [i] of domains.entries()) expect(out).toContain(`${NAME}.stage-${i + 1} (${domains[i]}): done, kept`);
    expect((await stat(model)).mtimeMs).toBe(mtime);
    const after = JSON.parse(await readFile(join(work, 'runs', NAME, 'results.json'), 'utf8')) as Results;
    const b = JSON.parse(before) as Results;
    expect(after.matrix).toEqual(b.matrix);
    expect(after.measures).toEqual(b.measures);
  });
});

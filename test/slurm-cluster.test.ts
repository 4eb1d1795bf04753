/**
 * The whole pipeline as Slurm jobs on a real one-node cluster (munged, slurmctld, slurmd started
 * in a temporary directory): `k3m-slurm submit` with 3 shards must give the outputs of one
 * process per stage (segment files, split tables, triples, feature TSV rows, LMDB records, the
 * reports' counts); then an extract shard killed mid-run with `scancel` and `k3m-slurm resume`
 * must give them again, the shard continuing from its checkpoint, with no record twice.
 *
 * Needs root and Debian's slurm-wlm + munge; without them it skips with the reason, except in
 * CI (CI=true), where it fails.
 */
import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readManifest, readSegmentStatus } from '@k3m-kit/raw-ingest';
import { diffWorkDirs } from '@k3m-kit/raw-ingest/testing';
import { decodeRecord, TensorpackLmdbReader } from '@k3m-kit/lmdb-writer';
import { featureTsvPath, readFeatureTsv } from '@k3m-kit/region-features';
import { makeSample, readJobsFile, status, type ResumeStep, type StepStatus } from '@k3m-kit/tools';
import { localClusterUnavailable, startLocalCluster, type LocalCluster } from '@k3m-kit/tools/testing';

const REPO = resolve(import.meta.dirname, '..');
const BIN = join(REPO, 'node_modules', '.bin');
const SHARDS = 3;
/** A small sample (45 lines, every fault kind) in segments of 5: 9 segments, 3 per shard. */
const SAMPLE = { train: 30, valid: 15 };
const SEGMENT_SIZE = '5';
const PIPELINE_MS = 480_000;

const why = localClusterUnavailable();
const inCi = process.env.CI === 'true';
if (why && !inCi) console.warn(`skipping the Slurm cluster test: ${why}`);

let root: string;
let cluster: LocalCluster | undefined;
let inputs: string[];
let ref: string;
/** The single-process reference run, started beside the first cluster run. */
let refDone: Promise<void>;

/** Runs a bin of the workspace; throws with its output when it fails. */
function run(bin: string, args: string[], env: NodeJS.ProcessEnv = process.env): string {
  const r = spawnSync(join(BIN, bin), args, { cwd: REPO, env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${bin} ${args.join(' ')} exited ${r.status}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

const execFileAsync = promisify(execFile);

/** The reference: one process per stage, no shards, into `ref`. */
async function referenceRun(): Promise<void> {
  const stage = (bin: string, args: string[]) => execFileAsync(join(BIN, bin), [...args, '--work-dir', ref, '--quiet'], { cwd: REPO, maxBuffer: 64 << 20 });
  await stage('raw-ingest', ['build-data', ...inputs.flatMap((i) => ['--input', i]), '--segment-size', SEGMENT_SIZE]);
  await stage('kg-triples', ['build']);
  await stage('region-features', ['extract']);
  await stage('lmdb-writer', ['convert']);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `status` until every step is done; fails early when a step failed or is blocked. */
async function waitForPipeline(workDir: string): Promise<StepStatus[]> {
  const end = Date.now() + PIPELINE_MS;
  for (;;) {
    const { steps: rows, queueError } = await status(workDir);
    if (queueError) throw new Error(queueError);
    if (rows.every((r) => r.state === 'done')) return rows;
    const bad = rows.find((r) => r.state === 'failed' || r.state === 'blocked');
    if (bad || Date.now() > end) {
      const logs = await readdir(join(workDir, 'slurm', 'logs')).catch(() => []);
      const tails = await Promise.all(logs.map(async (f) => `--- ${f}\n${(await readFile(join(workDir, 'slurm', 'logs', f), 'utf8')).slice(-1500)}`));
      throw new Error(`pipeline ${bad ? `step ${bad.step} ${bad.state}` : 'timed out'}\n${JSON.stringify(rows, null, 1)}\n${tails.join('\n')}\n${await cluster!.logs()}`);
    }
    await sleep(500);
  }
}

const readJson = async (path: string) => JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;

/** Every record of an LMDB as [key, image id, value bytes]. */
function lmdbRecords(path: string): [string, string, Buffer][] {
  const r = TensorpackLmdbReader.open(path);
  try {
    return r.keys.map((k, i) => {
      const v = Buffer.from(r.value(i));
      return [k, decodeRecord(v).record.imageId, v];
    });
  } finally {
    r.close();
  }
}

/** Image ids of a feature TSV, through region-features' codec (every line must decode). */
async function featureIds(path: string): Promise<string[]> {
  const ids: string[] = [];
  for await (const l of readFeatureTsv(path)) {
    if (!l.ok) throw new Error(`${path}:${l.line}: ${l.reason}`);
    ids.push(l.row.imageId);
  }
  return ids;
}

/** The shard's files, the merge-only report and what only a cluster run writes are compared apart. */
const comparedApart = (rel: string) =>
  rel.startsWith('slurm/') ||
  rel.startsWith('runs/') ||
  rel.startsWith('reports/') ||
  rel.startsWith('rejects/lmdb-writer') ||
  rel.startsWith('rejects/k3m-model') ||
  /^build-data\/segment-\d+\.json$/.test(rel) ||
  /\.shard-\d+-of-\d+\./.test(rel) ||
  /^image_lmdb_json\/.*\.lmdb/.test(rel);

const pick = (r: Record<string, unknown>, keys: string[]) => Object.fromEntries(keys.map((k) => [k, r[k]]));
const COUNTS = ['in', 'written', 'rejected', 'rejectedByReason', 'reconciles'];

/** Asserts that the cluster's work dir `w` holds what the single-process run wrote. */
async function expectSameAsOneProcess(w: string): Promise<void> {
  await refDone;
  // Segment files, segments.json, split tables, kg/, feature TSVs and parts, reject logs: byte for byte.
  expect(await diffWorkDirs(w, ref, comparedApart)).toEqual([]);
  const manifest = await readManifest(w);
  expect(manifest.segments.length).toBe(9);
  // Segment status files: equal, the detail of a failed image included (sharp failures are read
  // without libvips' shared error text, which concurrent decodes mix: core/image-errors.ts).
  for (const e of manifest.segments) {
    const [a, b] = await Promise.all([w, ref].map((d) => readSegmentStatus(d, e.seg)));
    expect(a).toEqual(b);
  }

  // Feature rows: each image once.
  for (const split of ['train', 'val'] as const) {
    const ids = await featureIds(featureTsvPath(w, split));
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toEqual(await featureIds(featureTsvPath(ref, split)));
  }

  // LMDB records: same keys, same values, each image once.
  for (const name of ['training', 'validation']) {
    const got = lmdbRecords(join(w, 'image_lmdb_json', `${name}_feat_all.lmdb`));
    const want = lmdbRecords(join(ref, 'image_lmdb_json', `${name}_feat_all.lmdb`));
    expect(got.length).toBeGreaterThan(0);
    expect(new Set(got.map(([, id]) => id)).size).toBe(got.length);
    expect(got.map(([k, id]) => [k, id])).toEqual(want.map(([k, id]) => [k, id]));
    expect(got.every(([, , v], i) => v.equals(want[i]![2]))).toBe(true);
  }

  // Reports: the whole-run counts, from the merges (and the shards, which must add up).
  const strip = ({ seconds: _s, run: _r, ...rest }: Record<string, unknown>) => rest;
  expect(strip(await readJson(join(w, 'reports/build-data.json')))).toEqual(strip(await readJson(join(ref, 'reports/build-data.json'))));
  expect(strip(await readJson(join(w, 'reports/kg-triples.json')))).toEqual(strip(await readJson(join(ref, 'reports/kg-triples.json'))));
  const rfKeys = [...COUNTS, 'items', 'imageMissing', 'segments', 'preset', 'weights', 'rule', 'form'];
  expect(pick(await readJson(join(w, 'reports/region-features.json')), rfKeys)).toEqual(pick(await readJson(join(ref, 'reports/region-features.json')), rfKeys));
  const lw = await readJson(join(ref, 'reports/lmdb-writer.json'));
  const shards = await Promise.all(Array.from({ length: SHARDS }, (_, i) => readJson(join(w, `reports/lmdb-writer.shard-${i}-of-${SHARDS}.json`))));
  // Items (in, written = records, rejected) and the feature rows' own ledger: the shards add up
  // to one process, and the merge reports what one process reports.
  type Rows = Record<'in' | 'written' | 'rejected', number>;
  for (const k of ['in', 'written', 'rejected'] as const) {
    expect(shards.reduce((a, s) => a + (s[k] as number), 0)).toBe(lw[k]);
    expect(shards.reduce((a, s) => a + (s.featureRows as Rows)[k], 0)).toBe((lw.featureRows as Rows)[k]);
  }
  expect(lw.reconciles).toBe(true);
  const merged = await readJson(join(w, 'reports/lmdb-writer.merge.json'));
  expect(pick(merged, [...COUNTS, 'featureRows'])).toEqual(pick(lw, [...COUNTS, 'featureRows']));
  const rejectLines = async (files: string[]) =>
    (await Promise.all(files.map((f) => readFile(f, 'utf8').catch(() => '')))).join('').split('\n').filter(Boolean).sort();
  expect(await rejectLines(Array.from({ length: SHARDS }, (_, i) => join(w, `rejects/lmdb-writer.shard-${i}-of-${SHARDS}.jsonl`)))).toEqual(
    await rejectLines([join(ref, 'rejects/lmdb-writer.jsonl')]),
  );

  // Pretraining ran last, on the merged LMDBs.
  const pre = await readJson(join(w, 'reports/k3m-model-pretrain.json'));
  expect(pick(pre, ['steps', 'reconciles'])).toEqual({ steps: 2, reconciles: true });
}

function submitArgs(workDir: string): string[] {
  return [
    'submit', '--work-dir', workDir, ...inputs.flatMap((i) => ['--input', i]), '--shards', String(SHARDS),
    '--build-data', `--segment-size ${SEGMENT_SIZE}`, '--pretrain', '--steps 2 --batch-size 4',
  ];
}

describe.skipIf(why !== undefined && !inCi)('the pipeline on a real one-node Slurm cluster', () => {
  beforeAll(async () => {
    if (why) throw new Error(`cannot start a local Slurm cluster: ${why}`);
    root = await mkdtemp(join(tmpdir(), 'k3m-slurm-'));
    const raw = join(root, 'raw');
    inputs = [`${join(raw, 'train.tsv')}:train`, `${join(raw, 'valid.tsv')}:val`];
    await makeSample({ out: raw, ...SAMPLE });
    cluster = await startLocalCluster(join(root, 'cluster'), { cpus: 2 });
    process.env.SLURM_CONF = cluster.env.SLURM_CONF;
    ref = join(root, 'ref');
    // Runs while the cluster works on the first pipeline (which leaves a CPU idle in its merges).
    refDone = referenceRun();
    refDone.catch(() => undefined);
  }, PIPELINE_MS);

  afterAll(async () => {
    await refDone?.catch(() => undefined);
    await cluster?.stop();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('3 shards as array jobs chained with afterok give the outputs of one process', async () => {
    const w = join(root, 'work-a');
    const out = run('k3m-slurm', submitArgs(w), cluster!.env);
    const jobs = (await readJobsFile(w))!;
    expect(jobs.steps.map((s) => s.name)).toEqual(['build-data', 'build-data-merge', 'kg-triples', 'extract', 'extract-merge', 'convert', 'convert-merge', 'pretrain']);
    for (const s of jobs.steps) expect(out).toContain(s.jobs[0]!.jobId);
    expect(jobs.steps.find((s) => s.name === 'convert')!.jobs[0]!.dependency).toBe(
      `afterok:${jobs.steps.find((s) => s.name === 'kg-triples')!.jobs[0]!.jobId}:${jobs.steps.find((s) => s.name === 'extract-merge')!.jobs[0]!.jobId}`,
    );

    const rows = await waitForPipeline(w);
    expect(rows.find((r) => r.step === 'extract')).toMatchObject({ done: 3, of: 3, reconciles: true });
    await expectSameAsOneProcess(w);
    // One log per array task and job.
    const logs = await readdir(join(w, 'slurm', 'logs'));
    expect(logs.filter((f) => f.startsWith('extract-') && !f.startsWith('extract-merge')).length).toBe(3);
    // The status command reads the same reports.
    const text = run('k3m-slurm', ['status', '--work-dir', w], cluster!.env);
    expect(text).toMatch(/^extract\s+done\s+3\/3/m);
  }, PIPELINE_MS);

  it('an extract shard killed mid-run is resubmitted alone by resume and continues from its checkpoint', async () => {
    const w = join(root, 'work-b');
    run('k3m-slurm', submitArgs(w), cluster!.env);
    const extract = (await readJobsFile(w))!.steps.find((s) => s.name === 'extract')!.jobs[0]!.jobId;

    // Shard 0 owns segments 0, 3, 6. Kill it once its first segment has a feature row.
    const firstPart = join(w, 'image_features', 'parts', 'seg0.tsv');
    const end = Date.now() + PIPELINE_MS;
    let rowsBefore = 0;
    while (rowsBefore === 0) {
      if (Date.now() > end) throw new Error('extract shard 0 never started');
      rowsBefore = existsSync(firstPart) ? (await readFile(firstPart, 'utf8')).split('\n').filter(Boolean).length : 0;
      if (rowsBefore === 0) await sleep(100);
    }
    spawnSync('scancel', [`${extract}_0`], { env: cluster!.env });
    // Killed before it finished: no report of shard 0.
    expect(existsSync(join(w, `reports/region-features.shard-0-of-${SHARDS}.json`))).toBe(false);

    const plan = JSON.parse(run('k3m-slurm', ['resume', '--work-dir', w, '--json'], cluster!.env)) as ResumeStep[];
    const ext = plan.find((s) => s.name === 'extract')!;
    // Shard 0 again; any other shard only if it had not started (it was waiting for a CPU, and
    // was cancelled before being submitted again); shards that started are left running.
    expect(ext.tasks).toContain(0);
    for (const t of ext.tasks!.filter((t) => t !== 0)) expect(ext.cancelled).toContain(`${extract}_${t}`);
    expect(ext.kept.every((id) => ext.tasks!.every((t) => id !== `${extract}_${t}`))).toBe(true);
    const jobs = (await readJobsFile(w))!;
    const resubmitted = jobs.steps.find((s) => s.name === 'extract')!.jobs;
    expect(resubmitted).toHaveLength(2);
    expect(resubmitted[1]!.tasks).toEqual(ext.tasks);
    // Every step after extract was submitted again (their first jobs could never start).
    for (const name of ['extract-merge', 'convert', 'convert-merge', 'pretrain']) expect(jobs.steps.find((s) => s.name === name)!.jobs).toHaveLength(2);
    // build-data and its merge were done: left alone. kg-triples runs beside extract: left alone
    // unless it was still waiting for a CPU (then cancelled first, as it had not started).
    for (const name of ['build-data', 'build-data-merge']) expect(jobs.steps.find((s) => s.name === name)!.jobs).toHaveLength(1);
    const kg = plan.find((s) => s.name === 'kg-triples')!;
    if (kg.tasks !== undefined) expect(kg.cancelled).toHaveLength(1);

    await waitForPipeline(w);
    await expectSameAsOneProcess(w);
    // The resumed shard ran only what the killed one had not written.
    const shard0 = await readJson(join(w, `reports/region-features.shard-0-of-${SHARDS}.json`));
    expect(shard0).toMatchObject({ reconciles: true, segments: 3 });
    const images = (shard0.items as number) - (shard0.imageMissing as number);
    expect(shard0.imagesProcessed as number).toBeLessThanOrEqual(images - rowsBefore);
  }, PIPELINE_MS);
});

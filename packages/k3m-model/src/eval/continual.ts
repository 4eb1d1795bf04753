/**
 * @file Continual pretraining by product domain (P9D / CTP, issue 15): `pretrain --domains
 * D1,D2,...` trains stage i on domain i's records, starting from stage i-1's weights (and its
 * optimizer moments; the learning-rate schedule restarts), with no measure against forgetting:
 * the sequential fine-tuning that P9D reports as its lower reference. After each stage the
 * stage's model is scored on every domain's held-out records (eval/domain-retrieval.ts), giving
 * row i of the accuracy matrix a[i][j]. Then joint training on all listed domains with the same
 * budget (the same epochs over their union, or the stages' steps summed) is the upper reference.
 *
 * Every stage and the joint run is an ordinary pretrain run (`runs/<name>.stage-<i>`,
 * `runs/<name>.joint`) with its checkpoints and report, so the usual resume applies: with
 * `--resume`, finished stages (their `stage.json`) are kept, an interrupted stage continues from
 * its last checkpoint, and the next stage starts from the last finished one. Without it every
 * stage starts over. One vocabulary serves every run: `--vocab`, or one built from the listed
 * domains' training records (`runs/<name>/vocab.txt`), so later domains' words are not unknown
 * tokens to a model whose vocabulary was built on the first domain.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic, type LedgerCounts } from '@k3m-kit/core';
import { hasCheckpoint, readCheckpoint, writeCheckpoint } from '../codecs/checkpoint.ts';
import { readDomainMap, type DomainMap } from '../codecs/domain-map.ts';
import { buildVocab, recordTexts, writeVocabFile } from '../data/vocab.ts';
import { openDomainItems, scoreDomains, type DomainScore } from './domain-retrieval.ts';
import { writeContinualResults, type ContinualResults, type RunOutcome } from './continual-results.ts';
import type { ContinualConfig } from '../train/continual-config.ts';
import { splitByDomain } from '../train/domains.ts';
import { plannedSteps, pretrain, type PretrainIo } from '../train/pretrain.ts';
import type { RecordSource } from '../train/records.ts';

/** The run directory name of stage `i` (0-based) and of the joint reference. */
export const stageRunName = (name: string, i: number) => `${name}.stage-${i + 1}`;
export const jointRunName = (name: string) => `${name}.joint`;
/** Written into a stage's (or the joint run's) directory once it is trained and scored. */
export const RUN_DONE_FILE = 'continual-run.json';

/**
 * Width of the retrieval projection fitted per domain (evaluate's CCA), whose shrinkage is fixed
 * by `--eval-shrinkage`: evaluate chooses its shrinkage on held-out fit pairs, which a domain's
 * few fit items cannot spare, and the accuracy matrix compares stages under one protocol.
 */
const PROJECTION_DIM = 64;
const ENCODE_BATCH = 32;

export interface ContinualResult {
  results: ContinualResults;
  /** Where results.json, results.md and the plot are. */
  outDir: string;
  aborted: boolean;
}

/** The records of several sources, one after the other. */
function concatSources(sources: readonly RecordSource[]): RecordSource {
  return {
    length: sources.reduce((n, s) => n + s.length, 0),
    async *records() {
      for (const s of sources) yield* s.records();
    },
  };
}

async function readDone(dir: string): Promise<RunOutcome | undefined> {
  const path = join(dir, RUN_DONE_FILE);
  return existsSync(path) ? (JSON.parse(await readFile(path, 'utf8')) as RunOutcome) : undefined;
}

/**
 * A stage's starting point: the previous stage's final checkpoint (weights, optimizer moments,
 * vocabulary, random state) with the trainer's position reset and this stage's step count.
 */
async function seedStage(fromDir: string, dir: string, totalSteps: number): Promise<void> {
  const ck = await readCheckpoint(fromDir);
  await mkdir(dir, { recursive: true });
  await rm(join(dir, 'metrics.jsonl'), { force: true });
  await writeCheckpoint(dir, { ...ck, state: { ...ck.state, step: 0, epoch: 0, batchInEpoch: 0, metricsLines: 0, totalSteps } });
}

/**
 * Runs the stages, the joint reference and the evaluation after each; see the file header.
 * @example await continualPretrain({ ...pretrainConfig({ workDir: 'work' }), domains: ['服饰鞋包', '家居用品'], domainMap: 'work/raw/domains.json', skipJoint: false, evalFitItems: 0, evalShrinkage: 0.5 }, io)
 */
export async function continualPretrain(c: ContinualConfig, io: PretrainIo): Promise<ContinualResult> {
  const t0 = performance.now();
  const log = io.log ?? (() => {});
  const map: DomainMap | undefined = c.domainMap ? await readDomainMap(c.domainMap) : undefined;
  const outDir = join(c.workDir, 'runs', c.name);
  await mkdir(outDir, { recursive: true });
  const train = await splitByDomain(io.train, c.domains, map, 'training');
  const valid = io.validation ? await splitByDomain(io.validation, c.domains, map, 'validation') : undefined;
  const domainTrain = (d: string) => train.sources.get(d)!;
  const listed = concatSources(c.domains.map(domainTrain));

  const vocab = c.vocab ?? join(outDir, 'vocab.txt');
  if (!c.vocab && !(c.resume && existsSync(vocab))) await writeVocabFile(vocab, (await buildVocab(recordTexts(listed.records()))).tokens);
  const runDirOf = (name: string) => join(c.workDir, 'runs', name);
  const names = [...c.domains.map((_, i) => stageRunName(c.name, i)), jointRunName(c.name)];
  if (!c.resume) for (const n of names) await rm(join(runDirOf(n), RUN_DONE_FILE), { force: true });

  const items = openDomainItems(c.workDir, c.domains, map, { seed: c.seed, maxFit: c.evalFitItems });
  const score = (runDir: string): Promise<DomainScore[]> =>
    scoreDomains(runDir, items.sides, { seed: c.seed, batchSize: ENCODE_BATCH, projection: { dim: PROJECTION_DIM, shrinkages: [c.evalShrinkage], seed: c.seed } });
  /** Trains (or resumes) one run, scores it, and marks it done. */
  const runOne = async (name: string, domain: string | undefined, source: RecordSource, validation: RecordSource | undefined, over: { steps?: number; resume: boolean }): Promise<RunOutcome | undefined> => {
    const r = await pretrain({ ...c, name, vocab, resume: over.resume, steps: over.steps }, { ...io, train: source, validation });
    if (r.aborted) return undefined;
    const te = performance.now();
    log(`${name}: scoring retrieval on ${c.domains.length} domains`);
    const scores = await score(r.runDir);
    const records: LedgerCounts = r.records;
    const outcome: RunOutcome = { run: name, domain, steps: r.steps, trainRecords: source.length, records, trainSeconds: r.trainSeconds, evalSeconds: (performance.now() - te) / 1000, scores };
    await writeFileAtomic(join(r.runDir, RUN_DONE_FILE), JSON.stringify(outcome, null, 2) + '\n');
    return outcome;
  };

  const stages: RunOutcome[] = [];
  let joint: RunOutcome | undefined;
  let aborted = false;
  try {
    for (const [i, domain] of c.domains.entries()) {
      const name = stageRunName(c.name, i);
      const dir = runDirOf(name);
      const done = c.resume ? await readDone(dir) : undefined;
      if (done) {
        log(`${name} (${domain}): done, kept`);
        stages.push(done);
        continue;
      }
      const resumable = c.resume && hasCheckpoint(dir);
      if (i > 0 && !resumable) await seedStage(runDirOf(stageRunName(c.name, i - 1)), dir, plannedSteps(c, domainTrain(domain).length));
      log(`${name}: domain ${domain}, ${domainTrain(domain).length} training records${i > 0 ? `, from ${stageRunName(c.name, i - 1)}` : ''}`);
      const out = await runOne(name, domain, domainTrain(domain), valid?.sources.get(domain), { steps: c.steps, resume: i > 0 || resumable });
      if (!out) {
        aborted = true;
        break;
      }
      stages.push(out);
    }
    if (!aborted && !c.skipJoint) {
      const name = jointRunName(c.name);
      joint = c.resume ? await readDone(runDirOf(name)) : undefined;
      if (joint) log(`${name}: done, kept`);
      else {
        log(`${name}: all ${c.domains.length} domains together, ${listed.length} training records`);
        const validation = valid ? concatSources(c.domains.map((d) => valid.sources.get(d)!)) : undefined;
        joint = await runOne(name, undefined, listed, validation, { steps: c.steps === undefined ? undefined : c.steps * c.domains.length, resume: c.resume });
        if (!joint) aborted = true;
      }
    }
  } finally {
    items.close();
  }
  const results: ContinualResults = {
    domains: c.domains,
    domainSource: map ? `--domain-map ${c.domainMap}` : "the records' domain field",
    budget: c.steps !== undefined ? `${c.steps} steps per stage, ${c.steps * c.domains.length} joint` : `${c.epochs} epochs per stage and joint`,
    seed: c.seed,
    stages,
    joint,
    otherDomains: train.otherDomains,
    withoutDomain: train.withoutDomain,
    seconds: (performance.now() - t0) / 1000,
  };
  if (!aborted) await writeContinualResults(outDir, results);
  return { results, outDir, aborted };
}

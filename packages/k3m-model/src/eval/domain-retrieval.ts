/**
 * @file Retrieval per product domain, the accuracy of continual pretraining (P9D / CTP evaluate
 * image-text retrieval on every domain after every stage): for each domain, cross-modal retrieval
 * (tasks.ts's {@link retrievalTask}, clean inputs) with the projection fitted on the domain's
 * training items and scored on its held-out items (the validation LMDB's records of the domain),
 * so a stage is judged on every domain by the same protocol.
 *
 * The domain's accuracy is {@link DOMAIN_ACCURACY}: Rank@10, the mean of title->image and
 * image->title, the acceptance test's metric. Items are read by position from the LMDBs (one
 * counting pass each, records the model cannot read left out as evaluate does).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Rng, UsageError } from '@k3m-kit/core';
import { RecordReader } from '@k3m-kit/lmdb-writer';
import type { DomainMap } from '../codecs/domain-map.ts';
import { resolvePreprocessOptions } from '../data/preprocess.ts';
import { LMDB_FILES } from '../train/records.ts';
import { domainOf } from '../train/domains.ts';
import { CLEAN_CELL } from './grid.ts';
import type { Items } from './items.ts';
import type { ProjectionOptions } from './probe.ts';
import { lmdbItems, scanLmdb } from './records.ts';
import { openRun } from './run-encoder.ts';
import { retrievalTask, type CellMetrics } from './tasks.ts';

/** What a[i][j] holds, and its name in tables. */
export const DOMAIN_ACCURACY = Object.freeze({ metrics: ['title-to-image.rank@10', 'image-to-title.rank@10'], name: 'retrieval Rank@10 (mean of title->image and image->title)' });

/** One domain's fit and held-out items. */
export interface DomainSide {
  domain: string;
  fit: Items;
  eval: Items;
}

/** The domains' items over open LMDBs; `close` when done. */
export interface DomainItems {
  sides: DomainSide[];
  close(): void;
}

/**
 * Opens the work directory's LMDBs and sorts their usable records by domain: fit = training
 * records (a seeded `maxFit` of them per domain, 0 = all), eval = validation records.
 */
export function openDomainItems(workDir: string, domains: readonly string[], map: DomainMap | undefined, o: { seed: number; maxFit: number }): DomainItems {
  const validPath = join(workDir, LMDB_FILES.validation);
  if (!existsSync(validPath)) throw new UsageError(`--domains: evaluating each domain needs its held-out records, and ${validPath} does not exist (give build-data a :val input)`);
  const train = RecordReader.open(join(workDir, LMDB_FILES.train));
  const valid = RecordReader.open(validPath);
  const close = () => {
    train.close();
    valid.close();
  };
  try {
    const first = train.length > 0 ? train.get(0) : undefined;
    const dims = resolvePreprocessOptions({ featureDim: first?.featureDim, numClasses: first?.numClasses });
    const byDomain = (reader: RecordReader) => {
      const out = new Map<string, number[]>(domains.map((d) => [d, []]));
      for (const p of scanLmdb(reader, dims, {}).usable) out.get(domainOf(reader.getTransient(p), map) ?? '')?.push(p);
      return out;
    };
    const fitPositions = byDomain(train);
    const evalPositions = byDomain(valid);
    const sides = domains.map((domain): DomainSide => {
      let fit = fitPositions.get(domain)!;
      if (o.maxFit > 0 && fit.length > o.maxFit) fit = Rng.from(o.seed, 'continual-fit', domain).sample(fit, o.maxFit).sort((a, b) => a - b);
      const held = evalPositions.get(domain)!;
      if (fit.length < 2 || held.length < 2) throw new UsageError(`--domains: domain ${domain} has ${fit.length} usable training and ${held.length} held-out records; retrieval needs at least 2 of each`);
      return { domain, fit: lmdbItems(train, fit), eval: lmdbItems(valid, held) };
    });
    return { sides, close };
  } catch (e) {
    close();
    throw e;
  }
}

/** One domain's retrieval metrics under one model, with its accuracy. */
export interface DomainScore {
  domain: string;
  accuracy: number;
  metrics: CellMetrics;
  fitItems: number;
  evalItems: number;
}

/** Scores the run in `runDir` on every domain's held-out items. */
export async function scoreDomains(runDir: string, sides: readonly DomainSide[], o: { seed: number; projection: ProjectionOptions; batchSize: number }): Promise<DomainScore[]> {
  const model = await openRun(runDir, o.batchSize);
  try {
    const ctx = { encoder: model.encoder, usesKnowledge: model.modalities.includes('knowledge'), cells: [CLEAN_CELL], seed: o.seed, fitCorruption: [], fitCorruptionShare: 0 };
    const out: DomainScore[] = [];
    for (const side of sides) {
      const metrics = (await retrievalTask(ctx, side, o.projection)).cells[CLEAN_CELL.id]!;
      const accuracy = DOMAIN_ACCURACY.metrics.reduce((s, k) => s + metrics[k]!, 0) / DOMAIN_ACCURACY.metrics.length;
      out.push({ domain: side.domain, accuracy, metrics, fitItems: side.fit.length, evalItems: side.eval.length });
    }
    return out;
  } finally {
    model.dispose?.();
  }
}

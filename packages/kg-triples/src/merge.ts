/**
 * @file The merge: every segment's parts in, the knowledge graph out (vocabularies with
 * thresholds, OpenKE files, triples.tsv, knowledge.tsv, the reject log and the report).
 *
 * It reads only part files, in segment-manifest order, so N shards give the same bytes as one
 * run. Three streaming passes over the part triples: (1) count properties and values,
 * (2) find each kept relation's and value's lowest-hash triple (holdout.ts), (3) write.
 * Memory holds the vocabularies (distinct properties and values), never the triples or items:
 * item entity ids are handed out as items stream past.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { access, mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { readManifest, type SegmentEntry } from '@k3m-kit/raw-ingest';
import { AtomicWriter, IoError, createProgress, finishReport, writeReport } from '@k3m-kit/core';
import { BatchWriter } from './batch-writer.ts';
import { KNOWLEDGE_FILE } from './codecs/knowledge-tsv.ts';
import {
  ENTITY_FILE,
  RELATION_FILE,
  TEST_FILE,
  TRAIN_FILE,
  VALID_FILE,
  encodeTriple2idLine,
  encodeVocabLine,
  itemEntity,
} from './codecs/openke.ts';
import { encodePartMarker, partPaths, readPartMarker, type PartMarker } from './codecs/part.ts';
import { TRIPLES_FILE, TRIPLES_HEADER, encodeTripleLine, readPartTripleBatches, type PartTriple } from './codecs/triples-tsv.ts';
import { holdoutSetOf, tripleHash, type HoldoutSet } from './holdout.ts';
import { MergeOptionsSchema, type MergeOptions } from './options.ts';
import { STAGE, sortedCounts, summarise, type KgReport } from './report.ts';
import type { PairReject } from './segment-pass.ts';

export const REJECTS_FILE = `${STAGE}.jsonl`;

/** Every file the merge writes, relative to the work dir. */
export const MERGE_OUTPUTS = [
  ...[ENTITY_FILE, RELATION_FILE, TRAIN_FILE, VALID_FILE, TEST_FILE, TRIPLES_FILE, KNOWLEDGE_FILE].map((f) => join('kg', f)),
  join('rejects', REJECTS_FILE),
  join('reports', `${STAGE}.json`),
];

export interface MergeRunOptions extends Partial<MergeOptions> {
  quiet?: boolean;
  /** Fingerprint every part must have (build passes its own); default: whatever they share. */
  fingerprint?: string;
}

/** Which segments of the manifest lack a current part, given the expected fingerprint. */
export async function pendingSegments(
  workDir: string,
  segments: readonly SegmentEntry[],
  fingerprint: string | undefined,
): Promise<{ markers: PartMarker[]; pending: number[] }> {
  const markers: PartMarker[] = [];
  const pending: number[] = [];
  const kgDir = join(workDir, 'kg');
  for (const e of segments) {
    const m = await readPartMarker(kgDir, e.seg);
    const fp = fingerprint ?? markers[0]?.fingerprint ?? m?.fingerprint;
    if (!m || m.fingerprint !== fp || m.file !== e.file || m.split !== e.split || m.stats.items !== e.items) pending.push(e.seg);
    else markers.push(m);
  }
  return { markers, pending };
}

function byCountThenName(a: [string, number], b: [string, number]): number {
  return b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);
}

/** Groups a part's triples by item (they are consecutive), a read chunk of items at a time. */
async function* itemBatches(path: string): AsyncGenerator<PartTriple[][]> {
  let group: PartTriple[] = [];
  for await (const batch of readPartTripleBatches(path)) {
    const items: PartTriple[][] = [];
    for (const t of batch) {
      if (group.length && group[0]!.imageId !== t.imageId) {
        items.push(group);
        group = [];
      }
      group.push(t);
    }
    yield items;
  }
  if (group.length) yield [group];
}

async function copyInto(w: BatchWriter, path: string): Promise<void> {
  await w.flush();
  const stream = createReadStream(path);
  try {
    for await (const chunk of stream) await w.writer.write(chunk as Buffer);
  } catch (e) {
    throw new IoError(path, e);
  }
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/**
 * Builds the knowledge graph from all parts. Throws an {@link IoError} naming the pending
 * segments when some segment has no current part. An unchanged rerun returns the existing report.
 * @example await merge('work', { minRelationFreq: 2, holdoutRatio: 0.1 })
 */
export async function merge(workDir: string, run: MergeRunOptions = {}): Promise<KgReport> {
  const started = performance.now();
  const options = MergeOptionsSchema.parse({
    minRelationFreq: run.minRelationFreq,
    minEntityFreq: run.minEntityFreq,
    holdoutRatio: run.holdoutRatio,
    seed: run.seed,
  });
  const kgDir = join(workDir, 'kg');
  const manifest = await readManifest(workDir);
  const { markers, pending } = await pendingSegments(workDir, manifest.segments, run.fingerprint);
  if (pending.length) {
    throw new IoError(join(kgDir, 'parts'), `segments ${pending.join(', ')} have no current part (run kg-triples build for them)`);
  }
  const segOptions = markers[0]?.options;
  const fingerprint = createHash('sha256')
    .update(markers.map(encodePartMarker).join(''))
    .update(JSON.stringify(options))
    .digest('hex')
    .slice(0, 16);
  const reportPath = join(workDir, 'reports', `${STAGE}.json`);
  if (await exists(reportPath)) {
    const previous = JSON.parse(await readFile(reportPath, 'utf8')) as KgReport;
    const all = await Promise.all(MERGE_OUTPUTS.map((f) => exists(join(workDir, f))));
    if (previous.merged && previous.fingerprint === fingerprint && all.every(Boolean)) return previous;
  }

  const summary = summarise(markers, segOptions?.maxPairs ?? 10);
  const entries = manifest.segments;
  const triplePaths = entries.map((e) => partPaths(kgDir, e.seg));
  const progress = createProgress('kg-triples merge', summary.pairsCleaned * 3, { quiet: run.quiet });

  // Pass 1: frequencies.
  const relCount = new Map<string, number>();
  const valCount = new Map<string, number>();
  for (const paths of triplePaths) {
    let n = 0;
    for await (const batch of readPartTripleBatches(paths.triples)) {
      for (const t of batch) {
        relCount.set(t.p, (relCount.get(t.p) ?? 0) + 1);
        valCount.set(t.v, (valCount.get(t.v) ?? 0) + 1);
      }
      n += batch.length;
    }
    progress.increment(n);
  }
  const relSorted = [...relCount.entries()].sort(byCountThenName);
  const topProperties = relSorted.slice(0, 20).map(([property, count]) => ({ property, count }));
  const relId = new Map<string, number>();
  for (const [name, c] of relSorted) if (c >= options.minRelationFreq) relId.set(name, relId.size);
  const valId = new Map<string, number>();
  for (const [name, c] of [...valCount.entries()].sort(byCountThenName)) if (c >= options.minEntityFreq) valId.set(name, valId.size);
  const relSeen = relCount.size;
  const valSeen = valCount.size;
  relCount.clear();
  valCount.clear();

  // Pass 2: each kept relation's and value's lowest hash, and the items that keep a triple.
  const relMin = new Float64Array(relId.size).fill(Infinity);
  const valMin = new Float64Array(valId.size).fill(Infinity);
  let itemEntities = 0;
  for (const paths of triplePaths) {
    let n = 0;
    for await (const items of itemBatches(paths.triples)) for (const group of items) {
      let keeps = false;
      for (const t of group) {
        n++;
        const r = relId.get(t.p);
        const v = valId.get(t.v);
        if (r === undefined || v === undefined) continue;
        keeps = true;
        const u = tripleHash(t.itemId, t.p, t.v, options.seed);
        if (u < relMin[r]!) relMin[r] = u;
        if (u < valMin[v]!) valMin[v] = u;
      }
      if (keeps) itemEntities++;
    }
    progress.increment(n);
  }

  // Pass 3: write.
  // pid alone can repeat across pods sharing a volume (often pid 1 in each).
  const tmpDir = join(kgDir, `.merge-${process.pid}-${randomBytes(4).toString('hex')}`);
  await mkdir(tmpDir, { recursive: true });
  const open = async (path: string) => new BatchWriter(await AtomicWriter.create(path));
  const entity = await open(join(kgDir, ENTITY_FILE));
  const relation = await open(join(kgDir, RELATION_FILE));
  const triplesTsv = await open(join(kgDir, TRIPLES_FILE));
  const knowledge = await open(join(kgDir, KNOWLEDGE_FILE));
  const rejects = await open(join(workDir, 'rejects', REJECTS_FILE));
  const bodies: Record<HoldoutSet, BatchWriter> = {
    train: await open(join(tmpDir, 'train.body')),
    valid: await open(join(tmpDir, 'valid.body')),
    test: await open(join(tmpDir, 'test.body')),
  };
  const finals = [entity, relation, triplesTsv, knowledge, rejects];
  const counts: Record<HoldoutSet, number> = { train: 0, valid: 0, test: 0 };
  const thresholdReasons = new Map<string, number>();
  let itemsWithoutTriples = 0;
  try {
    await relation.write(`${relId.size}\n`);
    for (const [name, id] of relId) await relation.write(encodeVocabLine(name, id) + '\n');
    await entity.write(`${valId.size + itemEntities}\n`);
    for (const [name, id] of valId) await entity.write(encodeVocabLine(name, id) + '\n');
    await triplesTsv.write(TRIPLES_HEADER + '\n');

    let nextItem = valId.size;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      const paths = triplePaths[i]!;
      await copyInto(knowledge, paths.knowledge);
      await copyInto(rejects, paths.rejects);
      let n = 0;
      let itemsWithTriples = 0;
      for await (const items of itemBatches(paths.triples)) for (const group of items) {
        n += group.length;
        const kept: { t: PartTriple; r: number; v: number; u: number; set: HoldoutSet }[] = [];
        let chunk = '';
        for (const t of group) {
          const r = relId.get(t.p);
          const v = valId.get(t.v);
          if (r === undefined || v === undefined) {
            const reason = r === undefined ? 'rare-relation' : 'rare-entity';
            thresholdReasons.set(reason, (thresholdReasons.get(reason) ?? 0) + 1);
            const rec: PairReject = { source: e.file, line: t.line, id: t.imageId, reason, property: t.p, value: t.v };
            chunk += JSON.stringify(rec) + '\n';
            continue;
          }
          const u = tripleHash(t.itemId, t.p, t.v, options.seed);
          let set = holdoutSetOf(u, options.holdoutRatio);
          if (set !== 'train' && (u === relMin[r] || u === valMin[v])) set = 'train';
          kept.push({ t, r, v, u, set });
        }
        if (chunk) await rejects.write(chunk);
        if (kept.length === 0) continue;
        itemsWithTriples++;
        if (kept.every((k) => k.set !== 'train')) {
          let lowest = kept[0]!;
          for (const k of kept) if (k.u < lowest.u) lowest = k;
          lowest.set = 'train';
        }
        const head = nextItem++;
        await entity.write(encodeVocabLine(itemEntity(group[0]!.imageId), head) + '\n');
        let tsv = '';
        const lines: Record<HoldoutSet, string> = { train: '', valid: '', test: '' };
        for (const k of kept) {
          tsv += encodeTripleLine(k.t) + '\n';
          lines[k.set] += encodeTriple2idLine(head, k.v, k.r) + '\n';
          counts[k.set]++;
        }
        await triplesTsv.write(tsv);
        for (const s of ['train', 'valid', 'test'] as const) if (lines[s]) await bodies[s].write(lines[s]);
      }
      itemsWithoutTriples += e.items - itemsWithTriples;
      progress.increment(n);
    }
    for (const s of ['train', 'valid', 'test'] as const) await bodies[s].commit();
    for (const [file, s] of [
      [TRAIN_FILE, 'train'],
      [VALID_FILE, 'valid'],
      [TEST_FILE, 'test'],
    ] as const) {
      const w = await open(join(kgDir, file));
      await w.write(`${counts[s]}\n`);
      await copyInto(w, join(tmpDir, `${s}.body`));
      await w.commit();
    }
    for (const w of finals) await w.commit();
  } catch (err) {
    for (const w of [...finals, ...Object.values(bodies)]) await w.abort();
    throw err;
  } finally {
    await rm(tmpDir, { recursive: true, force: true });
    progress.stop();
  }

  const reasons = summary.rejectedByReason;
  for (const [k, v] of thresholdReasons) reasons.set(k, (reasons.get(k) ?? 0) + v);
  const thresholdDropped = (thresholdReasons.get('rare-relation') ?? 0) + (thresholdReasons.get('rare-entity') ?? 0);
  const written = counts.train + counts.valid + counts.test;
  const { rejectedByReason: _, ...rest } = summary;
  const report: KgReport = finishReport({
    stage: STAGE,
    merged: true as const,
    fingerprint,
    options: { ...segOptions!, ...options },
    in: summary.pairsIn,
    written,
    rejected: [...reasons.values()].reduce((a, b) => a + b, 0),
    rejectedByReason: sortedCounts(reasons),
    reconciles: false,
    seconds: 0,
    ...rest,
    steps: [
      ...summary.steps,
      { step: 'thresholds', enabled: true, in: summary.pairsCleaned, changed: 0, dropped: thresholdDropped, out: written },
    ],
    itemsWithoutTriples,
    relations: { seen: relSeen, kept: relId.size, droppedByThreshold: relSeen - relId.size },
    entities: {
      values: { seen: valSeen, kept: valId.size, droppedByThreshold: valSeen - valId.size },
      items: itemEntities,
      total: valId.size + itemEntities,
    },
    triples: { ...counts, total: written },
    topProperties,
  });
  report.seconds = (performance.now() - started) / 1000;
  await writeReport(workDir, STAGE, report);
  return report;
}

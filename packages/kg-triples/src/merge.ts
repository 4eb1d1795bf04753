/**
 * @file The merge: every segment's parts in, the knowledge graph out (vocabularies with
 * thresholds, OpenKE files, triples.tsv, knowledge.tsv, the reject log and the report).
 *
 * It reads only part files, in segment-manifest order, so N shards give the same bytes as one
 * run. Three streaming passes over the part triples: {@link countVocabulary} (frequencies and
 * thresholds), {@link findAnchors} (each kept relation's and value's lowest-hash triple, see
 * holdout.ts) and {@link writeGraph}. Memory holds the vocabularies (distinct properties and
 * values), never the triples or items: item entity ids are handed out as items stream past.
 *
 * Counts (core's Ledger): `in` and the cleaning rejects are what the segment passes counted as
 * they read and dropped pairs (their markers); the graph writer counts the triples it writes
 * and the threshold rejects it adds.
 */
import { createHash } from 'node:crypto';
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readManifest, type SegmentEntry } from '@k3m-kit/raw-ingest';
import { IoError, Ledger, createProgress, writeReport, type Progress } from '@k3m-kit/core';
import { KNOWLEDGE_FILE } from './codecs/knowledge-tsv.ts';
import { ENTITY_FILE, RELATION_FILE, TEST_FILE, TRAIN_FILE, VALID_FILE } from './codecs/openke.ts';
import { encodePartMarker, partPaths, readPartMarker, type PartMarker } from './codecs/part.ts';
import { TRIPLES_FILE, readPartItemBatches, type PartTriple } from './codecs/triples-tsv.ts';
import { GraphWriter } from './graph-writer.ts';
import { assignSets, emptyAnchors, noteAnchor, tripleHash, type Anchors, type Hashed } from './holdout.ts';
import { MergeOptionsSchema, type MergeOptions, type SegmentOptions } from './options.ts';
import { STAGE, summarise, type KgReport, type SegmentSummary } from './report.ts';
import type { PairReject } from './segment-pass.ts';
import { countVocabulary, type Vocabulary } from './vocabulary.ts';

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

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** What a merge works from: the segments, their current part markers and the run's fingerprint. */
interface MergeInputs {
  segments: SegmentEntry[];
  markers: PartMarker[];
  /** Identifies the parts and merge options; an unchanged rerun skips the merge. */
  fingerprint: string;
}

/** The manifest's segments and their part markers; an {@link IoError} naming pending segments. */
async function mergeInputs(workDir: string, options: MergeOptions, partFingerprint: string | undefined): Promise<MergeInputs> {
  const manifest = await readManifest(workDir);
  const { markers, pending } = await pendingSegments(workDir, manifest.segments, partFingerprint);
  if (pending.length) {
    throw new IoError(join(workDir, 'kg', 'parts'), `segments ${pending.join(', ')} have no current part (run kg-triples build for them)`);
  }
  const fingerprint = createHash('sha256')
    .update(markers.map(encodePartMarker).join(''))
    .update(JSON.stringify(options))
    .digest('hex')
    .slice(0, 16);
  return { segments: manifest.segments, markers, fingerprint };
}

/** The previous report when it was made from the same inputs and every output is still there. */
async function upToDate(workDir: string, fingerprint: string): Promise<KgReport | undefined> {
  const reportPath = join(workDir, 'reports', `${STAGE}.json`);
  if (!(await exists(reportPath))) return undefined;
  const previous = JSON.parse(await readFile(reportPath, 'utf8')) as KgReport;
  const all = await Promise.all(MERGE_OUTPUTS.map((f) => exists(join(workDir, f))));
  return previous.merged && previous.fingerprint === fingerprint && all.every(Boolean) ? previous : undefined;
}

/** An item's triple with its relation and value ids, when both pass the thresholds. */
function idsOf(t: PartTriple, vocab: Vocabulary): { r: number; v: number } | undefined {
  const r = vocab.relId.get(t.p);
  const v = vocab.valId.get(t.v);
  return r === undefined || v === undefined ? undefined : { r, v };
}

/**
 * Second pass: each kept relation's and value's lowest-hash triple, and how many items keep a
 * triple (each gets an entity).
 */
async function findAnchors(tripleFiles: readonly string[], vocab: Vocabulary, seed: number, progress: Progress): Promise<{ anchors: Anchors; itemEntities: number }> {
  const anchors = emptyAnchors(vocab.relId.size, vocab.valId.size);
  let itemEntities = 0;
  for (const path of tripleFiles) {
    for await (const items of readPartItemBatches(path)) {
      for (const group of items) {
        let keeps = false;
        for (const t of group) {
          const ids = idsOf(t, vocab);
          if (!ids) continue;
          keeps = true;
          noteAnchor(anchors, ids.r, ids.v, tripleHash(t.itemId, t.p, t.v, seed));
        }
        if (keeps) itemEntities++;
        progress.increment(group.length);
      }
    }
  }
  return { anchors, itemEntities };
}

/** One item's triples split by the thresholds: the kept ones hashed, the others as rejects. */
function applyThresholds(group: readonly PartTriple[], vocab: Vocabulary, seed: number, source: string): { kept: Hashed<PartTriple>[]; rejects: PairReject[] } {
  const kept: Hashed<PartTriple>[] = [];
  const rejects: PairReject[] = [];
  for (const t of group) {
    const ids = idsOf(t, vocab);
    if (ids) kept.push({ t, ...ids, u: tripleHash(t.itemId, t.p, t.v, seed) });
    else rejects.push({ source, line: t.line, id: t.imageId, reason: vocab.relId.has(t.p) ? 'rare-entity' : 'rare-relation', property: t.p, value: t.v });
  }
  return { kept, rejects };
}

/**
 * Third pass: every file of the graph, segment by segment in manifest order. Returns the
 * triples per held-out set and the items that kept no triple.
 */
async function writeGraph(
  workDir: string,
  inputs: MergeInputs,
  vocab: Vocabulary,
  found: { anchors: Anchors; itemEntities: number },
  options: MergeOptions,
  ledger: Ledger,
  progress: Progress,
): Promise<{ counts: GraphWriter['counts']; itemsWithoutTriples: number }> {
  const out = await GraphWriter.open(workDir, REJECTS_FILE, vocab, found.itemEntities, ledger);
  let itemsWithoutTriples = 0;
  try {
    for (const e of inputs.segments) {
      const paths = partPaths(join(workDir, 'kg'), e.seg);
      await out.copyPart(paths);
      let itemsWithTriples = 0;
      for await (const items of readPartItemBatches(paths.triples)) {
        for (const group of items) {
          progress.increment(group.length);
          const { kept, rejects } = applyThresholds(group, vocab, options.seed, e.file);
          await out.reject(rejects);
          if (kept.length === 0) continue;
          itemsWithTriples++;
          await out.writeItem(group[0]!.imageId, assignSets(kept, found.anchors, options.holdoutRatio));
        }
      }
      itemsWithoutTriples += e.items - itemsWithTriples;
    }
    await out.commit();
  } catch (err) {
    await out.abort();
    throw err;
  }
  return { counts: out.counts, itemsWithoutTriples };
}

/** The merged run's report from the segments' summary and what the three passes found. */
function mergeReport(
  inputs: MergeInputs,
  options: SegmentOptions & MergeOptions,
  summary: SegmentSummary,
  ledger: Ledger,
  vocab: Vocabulary,
  found: { itemEntities: number },
  graph: { counts: GraphWriter['counts']; itemsWithoutTriples: number },
  seconds: number,
): KgReport {
  const counts = ledger.counts();
  const thresholdDropped = (counts.rejectedByReason['rare-relation'] ?? 0) + (counts.rejectedByReason['rare-entity'] ?? 0);
  return {
    stage: STAGE,
    merged: true,
    fingerprint: inputs.fingerprint,
    options,
    ...counts,
    seconds,
    ...summary,
    steps: [...summary.steps, { step: 'thresholds', enabled: true, in: summary.pairsCleaned, changed: 0, dropped: thresholdDropped, out: counts.written }],
    itemsWithoutTriples: graph.itemsWithoutTriples,
    relations: { seen: vocab.relSeen, kept: vocab.relId.size, droppedByThreshold: vocab.relSeen - vocab.relId.size },
    entities: {
      values: { seen: vocab.valSeen, kept: vocab.valId.size, droppedByThreshold: vocab.valSeen - vocab.valId.size },
      items: found.itemEntities,
      total: vocab.valId.size + found.itemEntities,
    },
    triples: { ...graph.counts, total: counts.written },
    topProperties: vocab.topProperties,
  };
}

/**
 * Builds the knowledge graph from all parts. Throws an {@link IoError} naming the pending
 * segments when some segment has no current part. An unchanged rerun returns the existing report.
 * @example await merge('work', { minRelationFreq: 2, holdoutRatio: 0.1 })
 */
export async function merge(workDir: string, run: MergeRunOptions = {}): Promise<KgReport> {
  const started = performance.now();
  const options = MergeOptionsSchema.parse({ minRelationFreq: run.minRelationFreq, minEntityFreq: run.minEntityFreq, holdoutRatio: run.holdoutRatio, seed: run.seed });
  const inputs = await mergeInputs(workDir, options, run.fingerprint);
  const previous = await upToDate(workDir, inputs.fingerprint);
  if (previous) return previous;

  const segOptions = inputs.markers[0]?.options;
  const summary = summarise(inputs.markers, segOptions?.maxPairs ?? 10);
  // The pairs the segment passes read and the ones their cleaning dropped, as they counted them.
  const ledger = new Ledger();
  for (const m of inputs.markers) ledger.addCounts({ in: m.stats.pairsIn, written: 0, rejectedByReason: m.stats.rejectedByReason });
  const tripleFiles = inputs.segments.map((e) => partPaths(join(workDir, 'kg'), e.seg).triples);
  const progress = createProgress('kg-triples merge', summary.pairsCleaned * 3, { quiet: run.quiet });
  try {
    const vocab = await countVocabulary(tripleFiles, options, progress);
    const found = await findAnchors(tripleFiles, vocab, options.seed, progress);
    const graph = await writeGraph(workDir, inputs, vocab, found, options, ledger, progress);
    const report = mergeReport(inputs, { ...segOptions!, ...options }, summary, ledger, vocab, found, graph, (performance.now() - started) / 1000);
    await writeReport(workDir, STAGE, report);
    return report;
  } finally {
    progress.stop();
  }
}

/**
 * @file The merge's first pass: how often each property and value occurs over every part
 * triple, and the dense ids of those that pass the thresholds (`--min-relation-freq`,
 * `--min-entity-freq`), most frequent first, ties by name, so ids do not depend on sharding.
 */
import type { Progress } from '@k3m-kit/core';
import { readPartTripleBatches } from './codecs/triples-tsv.ts';
import type { MergeOptions } from './options.ts';

/** Relations and value entities kept in the graph, with their ids. */
export interface Vocabulary {
  relId: Map<string, number>;
  valId: Map<string, number>;
  /** Distinct properties and values seen, kept or not. */
  relSeen: number;
  valSeen: number;
  /** The 20 most frequent properties, for the report. */
  topProperties: { property: string; count: number }[];
}

function byCountThenName(a: [string, number], b: [string, number]): number {
  return b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);
}

/** Ids for the names counted at least `min` times, in frequency order. */
function idsOf(sorted: readonly [string, number][], min: number): Map<string, number> {
  const ids = new Map<string, number>();
  for (const [name, count] of sorted) if (count >= min) ids.set(name, ids.size);
  return ids;
}

/**
 * Counts properties and values over the part triple files (in manifest order) and applies the
 * thresholds. Memory: the distinct properties and values, never the triples.
 */
export async function countVocabulary(tripleFiles: readonly string[], o: Pick<MergeOptions, 'minRelationFreq' | 'minEntityFreq'>, progress: Progress): Promise<Vocabulary> {
  const relCount = new Map<string, number>();
  const valCount = new Map<string, number>();
  for (const path of tripleFiles) {
    for await (const batch of readPartTripleBatches(path)) {
      for (const t of batch) {
        relCount.set(t.p, (relCount.get(t.p) ?? 0) + 1);
        valCount.set(t.v, (valCount.get(t.v) ?? 0) + 1);
      }
      progress.increment(batch.length);
    }
  }
  const relSorted = [...relCount.entries()].sort(byCountThenName);
  return {
    relId: idsOf(relSorted, o.minRelationFreq),
    valId: idsOf([...valCount.entries()].sort(byCountThenName), o.minEntityFreq),
    relSeen: relCount.size,
    valSeen: valCount.size,
    topProperties: relSorted.slice(0, 20).map(([property, count]) => ({ property, count })),
  };
}

/**
 * @file The knowledge-completion questions, built from kg-triples' OpenKE files (`kg/`):
 * entities are values (named by their text) then items (`item:<image_id>`), relations are
 * properties, and `valid2id.txt`/`test2id.txt` hold the held-out `<item, property, value>`
 * triples.
 *
 * - Evaluation: the TEST triples (a seeded sample of their items when capped). Each item is shown
 *   with every one of its held-out pairs (valid and test) removed from its knowledge text, and
 *   the question is the value given the property, ranked against the whole value vocabulary.
 *   Other values known true for the same (item, property) in any split are filtered out.
 * - Fit: items with no held-out triple, each with up to `hidePerItem` of its training pairs
 *   (seeded) removed from its knowledge and asked back. Valid triples are not used otherwise
 *   (nothing is tuned).
 */
import type { K3mRecord } from '@k3m-kit/lmdb-writer';
import { formatPv, parsePv, type Pair } from '@k3m-kit/kg-triples';
import { Rng } from '../data/rng.ts';
import type { CompletionExample, CompletionSplit } from './tasks.ts';

/** The OpenKE files as read: names by id and `[head, tail, relation]` triples. */
export interface KgTables {
  entities: readonly string[];
  relations: readonly string[];
  train: readonly (readonly [number, number, number])[];
  valid: readonly (readonly [number, number, number])[];
  test: readonly (readonly [number, number, number])[];
}

export interface CompletionSplitOptions {
  seed: number;
  /** At most this many test triples (whole items, seeded), 0 = all. */
  maxEvalTriples: number;
  /** At most this many fit items (seeded), 0 = all. */
  maxFitItems: number;
  /** Training pairs hidden and asked per fit item. */
  hidePerItem: number;
}

export interface BuiltCompletionSplit extends CompletionSplit {
  /** Value entity names by value index (the candidate vocabulary). */
  values: string[];
  evalItems: string[];
  fitItems: string[];
  /** Test triples whose item has no record (not evaluated). */
  skippedTriples: number;
}

const ITEM_PREFIX = 'item:';

/** The item's knowledge without the given pairs (compared by property and value text). */
export function withoutPairs(pv: string, drop: readonly Pair[]): string {
  if (drop.length === 0) return pv;
  const gone = new Set(drop.map((d) => `${d.p}\u0000${d.v}`));
  return formatPv(parsePv(pv).filter((q) => !q.malformed && !gone.has(`${q.p}\u0000${q.v}`)));
}

/**
 * Builds the fit and evaluation questions from the KG tables and the records by image id.
 * Deterministic for a given seed.
 */
export function buildCompletionSplit(kg: KgTables, records: ReadonlyMap<string, K3mRecord>, opts: CompletionSplitOptions): BuiltCompletionSplit {
  const valueIndex = new Map<number, number>();
  const values: string[] = [];
  const itemOf = new Map<number, string>();
  kg.entities.forEach((name, id) => {
    if (name.startsWith(ITEM_PREFIX)) itemOf.set(id, name.slice(ITEM_PREFIX.length));
    else {
      valueIndex.set(id, values.length);
      values.push(name);
    }
  });
  type Q = { item: string; relation: number; value: number };
  const toQ = ([h, t, r]: readonly [number, number, number]): Q | undefined => {
    const item = itemOf.get(h);
    const value = valueIndex.get(t);
    return item === undefined || value === undefined ? undefined : { item, relation: r, value };
  };
  const byItem = (triples: KgTables['train']) => {
    const m = new Map<string, Q[]>();
    for (const t of triples) {
      const q = toQ(t);
      if (q) m.set(q.item, [...(m.get(q.item) ?? []), q]);
    }
    return m;
  };
  const train = byItem(kg.train);
  const valid = byItem(kg.valid);
  const test = byItem(kg.test);
  const trueValues = new Map<string, Set<number>>();
  for (const m of [train, valid, test]) {
    for (const qs of m.values()) {
      for (const q of qs) {
        const k = `${q.item}\u0000${q.relation}`;
        trueValues.set(k, (trueValues.get(k) ?? new Set()).add(q.value));
      }
    }
  }
  const pairOf = (q: Q): Pair => ({ p: kg.relations[q.relation]!, v: values[q.value]! });
  const heldOut = (item: string) => [...(valid.get(item) ?? []), ...(test.get(item) ?? [])].map(pairOf);

  // Evaluation items: those with test triples and a record, in a seeded order, whole items until the cap.
  const rng = Rng.derive(opts.seed, 'completion-split');
  const testItems = rng.shuffle([...test.keys()].filter((i) => records.has(i)).sort());
  let skippedTriples = 0;
  for (const [item, qs] of test) if (!records.has(item)) skippedTriples += qs.length;
  const evalItems: string[] = [];
  const evalRecords: K3mRecord[] = [];
  const evalExamples: CompletionExample[] = [];
  for (const item of testItems) {
    const qs = test.get(item)!;
    if (opts.maxEvalTriples > 0 && evalExamples.length + qs.length > opts.maxEvalTriples) {
      if (evalExamples.length > 0) break;
    }
    const rec = records.get(item)!;
    const record = evalRecords.length;
    evalItems.push(item);
    evalRecords.push({ ...rec, pv: withoutPairs(rec.pv, heldOut(item)) });
    for (const q of qs) {
      const also = new Set(trueValues.get(`${item}\u0000${q.relation}`));
      also.delete(q.value);
      evalExamples.push({ record, relation: q.relation, value: q.value, alsoTrue: also });
    }
  }

  // Fit items: no held-out triple at all, with a record.
  const candidates = rng.shuffle([...train.keys()].filter((i) => records.has(i) && !valid.has(i) && !test.has(i)).sort());
  const fitItems = opts.maxFitItems > 0 ? candidates.slice(0, opts.maxFitItems) : candidates;
  const fitRecords: K3mRecord[] = [];
  const fitExamples: CompletionExample[] = [];
  for (const item of fitItems) {
    const hidden = Rng.derive(opts.seed, 'completion-hide', item).shuffle([...train.get(item)!]).slice(0, opts.hidePerItem);
    const rec = records.get(item)!;
    const record = fitRecords.length;
    fitRecords.push({ ...rec, pv: withoutPairs(rec.pv, hidden.map(pairOf)) });
    for (const q of hidden) fitExamples.push({ record, relation: q.relation, value: q.value });
  }
  return {
    numRelations: kg.relations.length,
    numValues: values.length,
    values,
    fitRecords,
    fitExamples,
    fitItems,
    evalRecords,
    evalExamples,
    evalItems,
    skippedTriples,
  };
}

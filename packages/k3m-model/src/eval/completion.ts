/**
 * @file The knowledge-completion questions, built from kg-triples' OpenKE files (`kg/`):
 * entities are values (named by their text) then items (`item:<image_id>`), relations are
 * properties, and `valid2id.txt`/`test2id.txt` hold the held-out `<item, property, value>`
 * triples. Every task shares the records made here, so one encoding serves classification and
 * completion:
 *
 * - every item is shown WITHOUT its held-out pairs (valid and test), on both sides;
 * - evaluation questions: the held-out triples (valid and test: nothing is tuned on valid) of
 *   the evaluation items; the value given the property, ranked against the whole value
 *   vocabulary, other values known true for the same (item, property) filtered out;
 * - fit questions: up to `hidePerItem` training pairs per fit item (seeded), also removed from
 *   the knowledge the item is shown with.
 */
import type { K3mRecord } from '@k3m-kit/lmdb-writer';
import { formatPv, parsePv, type Pair } from '@k3m-kit/kg-triples';
import { Rng } from '@k3m-kit/core';
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
  /** Training pairs hidden and asked per fit item. */
  hidePerItem: number;
}

export interface BuiltCompletionSplit extends CompletionSplit {
  /** Value entity names by value index (the candidate vocabulary). */
  values: string[];
  /** Held-out triples whose item is not among the fit or evaluation items. */
  unusedHeldOut: number;
}

const ITEM_PREFIX = 'item:';

/** The item's knowledge without the given pairs (compared by property and value text). */
export function withoutPairs(pv: string, drop: readonly Pair[]): string {
  if (drop.length === 0) return pv;
  const gone = new Set(drop.map((d) => `${d.p}\u0000${d.v}`));
  return formatPv(parsePv(pv).filter((q) => !q.malformed && !gone.has(`${q.p}\u0000${q.v}`)));
}

/**
 * The fit and evaluation records as every task sees them, with the questions about them.
 * Deterministic for a given seed; records keep their order.
 */
export function buildCompletionSplit(
  kg: KgTables,
  fit: readonly K3mRecord[],
  evalSide: readonly K3mRecord[],
  opts: CompletionSplitOptions,
): BuiltCompletionSplit {
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
  type Q = { relation: number; value: number };
  const byItem = (triples: KgTables['train']) => {
    const m = new Map<string, Q[]>();
    for (const [h, t, r] of triples) {
      const item = itemOf.get(h);
      const value = valueIndex.get(t);
      if (item === undefined || value === undefined) continue;
      let list = m.get(item);
      if (!list) m.set(item, (list = []));
      list.push({ relation: r, value });
    }
    return m;
  };
  const train = byItem(kg.train);
  const heldOut = byItem([...kg.valid, ...kg.test]);
  const trueValues = (item: string, relation: number) =>
    new Set([...(train.get(item) ?? []), ...(heldOut.get(item) ?? [])].filter((q) => q.relation === relation).map((q) => q.value));
  const pairOf = (q: Q): Pair => ({ p: kg.relations[q.relation]!, v: values[q.value]! });
  let unusedHeldOut = 0;
  const seen = new Set([...fit, ...evalSide].map((r) => r.imageId));
  for (const [item, qs] of heldOut) if (!seen.has(item)) unusedHeldOut += qs.length;

  const evalRecords: K3mRecord[] = [];
  const evalExamples: CompletionExample[] = [];
  evalSide.forEach((rec, record) => {
    const qs = heldOut.get(rec.imageId) ?? [];
    evalRecords.push(qs.length ? { ...rec, pv: withoutPairs(rec.pv, qs.map(pairOf)) } : rec);
    for (const q of qs) {
      const also = trueValues(rec.imageId, q.relation);
      also.delete(q.value);
      evalExamples.push({ record, relation: q.relation, value: q.value, alsoTrue: also });
    }
  });

  const fitRecords: K3mRecord[] = [];
  const fitExamples: CompletionExample[] = [];
  fit.forEach((rec, record) => {
    const hidden = Rng.from(opts.seed, 'completion-hide', rec.imageId)
      .shuffle([...(train.get(rec.imageId) ?? [])])
      .slice(0, opts.hidePerItem);
    const drop = [...(heldOut.get(rec.imageId) ?? []), ...hidden];
    fitRecords.push(drop.length ? { ...rec, pv: withoutPairs(rec.pv, drop.map(pairOf)) } : rec);
    for (const q of hidden) fitExamples.push({ record, relation: q.relation, value: q.value });
  });
  return { numRelations: kg.relations.length, numValues: values.length, values, fitRecords, fitExamples, evalRecords, evalExamples, unusedHeldOut };
}

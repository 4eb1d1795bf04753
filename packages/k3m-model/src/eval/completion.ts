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
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ENTITY_FILE, RELATION_FILE, TEST_FILE, TRAIN_FILE, VALID_FILE, formatPv, parsePv, readTriples2id, readVocab, type Pair } from '@k3m-kit/kg-triples';
import { Rng } from '@k3m-kit/core';
import { mapItems, type Items } from './items.ts';
import type { CompletionExample, CompletionSplit } from './tasks.ts';

const ITEM_PREFIX = 'item:';

/** The OpenKE files as read: names by id and `[head, tail, relation]` triples. */
export interface KgTables {
  entities: readonly string[];
  relations: readonly string[];
  train: readonly (readonly [number, number, number])[];
  valid: readonly (readonly [number, number, number])[];
  test: readonly (readonly [number, number, number])[];
  /** Held-out (valid, test) triples of items left out while reading. */
  skippedHeldOut?: number;
}

/**
 * Reads kg-triples' OpenKE files from `kgDir`, streaming the triples and keeping only those
 * about the items in `keep` (all when absent); undefined when any file is missing.
 */
export async function readKgTables(kgDir: string, keep?: ReadonlySet<string>): Promise<KgTables | undefined> {
  const files = [ENTITY_FILE, RELATION_FILE, TRAIN_FILE, VALID_FILE, TEST_FILE].map((f) => join(kgDir, f));
  if (!files.every(existsSync)) return undefined;
  const entities = await readVocab(files[0]!);
  const kept = (h: number) => {
    const name = entities[h];
    return !keep || !name?.startsWith(ITEM_PREFIX) || keep.has(name.slice(ITEM_PREFIX.length));
  };
  let skippedHeldOut = 0;
  const triples = async (p: string, heldOut: boolean) => {
    const out: [number, number, number][] = [];
    for await (const t of readTriples2id(p)) {
      if (kept(t[0])) out.push(t);
      else if (heldOut) skippedHeldOut++;
    }
    return out;
  };
  return {
    entities,
    relations: await readVocab(files[1]!),
    train: await triples(files[2]!, false),
    valid: await triples(files[3]!, true),
    test: await triples(files[4]!, true),
    skippedHeldOut,
  };
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

/** The item's knowledge without the given pairs (compared by property and value text). */
export function withoutPairs(pv: string, drop: readonly Pair[]): string {
  if (drop.length === 0) return pv;
  const gone = new Set(drop.map((d) => `${d.p}\u0000${d.v}`));
  return formatPv(parsePv(pv).filter((q) => !q.malformed && !gone.has(`${q.p}\u0000${q.v}`)));
}

/**
 * The fit and evaluation items as every task sees them (each shown without the pairs asked or
 * held out, applied when its record is read), with the questions about them. Deterministic for
 * a given seed; items keep their order.
 */
export function buildCompletionSplit(
  kg: KgTables,
  fit: Items,
  evalSide: Items,
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
  const ids = (items: Items) => Array.from({ length: items.length }, (_, i) => items.info(i).imageId);
  const fitIds = ids(fit);
  const evalIds = ids(evalSide);
  let unusedHeldOut = kg.skippedHeldOut ?? 0;
  const seen = new Set([...fitIds, ...evalIds]);
  for (const [item, qs] of heldOut) if (!seen.has(item)) unusedHeldOut += qs.length;
  // The pairs each item is shown without, applied when its record is read.
  const hiddenFrom = (items: Items, drop: Pair[][]) => mapItems(items, (r, i) => (drop[i]!.length ? { ...r, pv: withoutPairs(r.pv, drop[i]!) } : r));

  const evalDrop: Pair[][] = [];
  const evalExamples: CompletionExample[] = [];
  evalIds.forEach((id, record) => {
    const qs = heldOut.get(id) ?? [];
    evalDrop.push(qs.map(pairOf));
    for (const q of qs) {
      const also = trueValues(id, q.relation);
      also.delete(q.value);
      evalExamples.push({ record, relation: q.relation, value: q.value, alsoTrue: also });
    }
  });

  const fitDrop: Pair[][] = [];
  const fitExamples: CompletionExample[] = [];
  fitIds.forEach((id, record) => {
    const hidden = Rng.from(opts.seed, 'completion-hide', id)
      .shuffle([...(train.get(id) ?? [])])
      .slice(0, opts.hidePerItem);
    fitDrop.push([...(heldOut.get(id) ?? []), ...hidden].map(pairOf));
    for (const q of hidden) fitExamples.push({ record, relation: q.relation, value: q.value });
  });
  const fitRecords = hiddenFrom(fit, fitDrop);
  const evalRecords = hiddenFrom(evalSide, evalDrop);
  return { numRelations: kg.relations.length, numValues: values.length, values, fitRecords, fitExamples, evalRecords, evalExamples, unusedHeldOut };
}

/**
 * @file The items a task works on, as records read on demand. The evaluation never holds a
 * side's records: a task asks for record i when it encodes it (in chunks, see encoder.ts) and
 * keeps only what the metrics need, the feature rows and each item's light fields
 * ({@link ItemInfo}: id, category, instance labels). Corruption, views and hidden knowledge pairs
 * are lazy maps over items, so they cost nothing until a record is read.
 */
import type { K3mRecord } from '@k3m-kit/lmdb-writer';

/** What the metrics need of an item, at hand without reading its record. */
export interface ItemInfo {
  imageId: string;
  category: string;
  /** Product instances the item shows (Product1M; the record's `extra.instanceLabels`); absent when the data has none. */
  instanceLabels?: readonly string[];
}

/** Items by position: their records read when asked for, their light fields at hand. */
export interface Items {
  readonly length: number;
  /** Record i; may be read from disk each time, so a caller keeps it only as long as it needs it. */
  get(i: number): K3mRecord;
  info(i: number): ItemInfo;
}

/** The light fields of a record. */
export function infoOf(r: K3mRecord): ItemInfo {
  const labels = r.extra?.instanceLabels;
  return labels ? { imageId: r.imageId, category: r.category, instanceLabels: [...labels] } : { imageId: r.imageId, category: r.category };
}

/** Items over records already in memory (tests, small sets). */
export function itemsOf(records: readonly K3mRecord[]): Items {
  const infos = records.map(infoOf);
  return { length: records.length, get: (i) => at(records, i), info: (i) => at(infos, i) };
}

/**
 * The items with `f` applied to each record when it is read; the light fields are unchanged
 * (corruption and views keep an item's id, category and instances).
 */
export function mapItems(items: Items, f: (r: K3mRecord, i: number) => K3mRecord): Items {
  return { length: items.length, get: (i) => f(items.get(i), i), info: (i) => items.info(i) };
}

/** The items at `positions`, in that order. */
export function subsetItems(items: Items, positions: readonly number[]): Items {
  return { length: positions.length, get: (i) => items.get(at(positions, i)), info: (i) => items.info(at(positions, i)) };
}

/** Every item's light fields. */
export function infosOf(items: Items): ItemInfo[] {
  return Array.from({ length: items.length }, (_, i) => items.info(i));
}

function at<T>(xs: readonly T[], i: number): T {
  if (!(i >= 0 && i < xs.length)) throw new RangeError(`item ${i} outside [0, ${xs.length})`);
  return xs[i]!;
}

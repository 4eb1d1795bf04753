/**
 * @file The deterministic held-out split of triples (issue 3, build step 5).
 *
 * Each triple gets `u = hash(item_id, property, value, seed) / 2^53` in [0, 1): held out when
 * `u < ratio` (valid when `u < ratio / 2`, else test). The hash reads only the triple's content,
 * so the split does not depend on sharding, order or the rest of the data. Three guards then
 * move held-out triples back to train, all decided by the same hash:
 *
 * - per item: if every triple of an item would be held out, its lowest-hash triple stays in
 *   train, so no item loses all its triples;
 * - per value entity and per relation: the lowest-hash triple of each stays in train, so every
 *   entity and relation of valid/test also occurs in train (link prediction needs embeddings).
 */

/** cyrb53 (public domain, bryc): a fast 53-bit string hash, stable across platforms. */
export function cyrb53(str: string, seed = 0): number {
  let h1 = 0xdeadbeef ^ seed;
  let h2 = 0x41c6ce57 ^ seed;
  for (let i = 0; i < str.length; i++) {
    const ch = str.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

const TWO_53 = 2 ** 53;

/** The triple's position in [0, 1). */
export function tripleHash(itemId: string, p: string, v: string, seed: number): number {
  return cyrb53(`${itemId}\t${p}\t${v}`, seed) / TWO_53;
}

export type HoldoutSet = 'train' | 'valid' | 'test';

/** The set a hash falls in before the guards. */
export function holdoutSetOf(u: number, ratio: number): HoldoutSet {
  if (u >= ratio) return 'train';
  return u < ratio / 2 ? 'valid' : 'test';
}

/**
 * Per kept relation and value entity (by id), the lowest hash of its triples: that triple stays
 * in train (the guard above). Found by the merge's second pass over every kept triple.
 */
export interface Anchors {
  relMin: Float64Array;
  valMin: Float64Array;
}

export function emptyAnchors(relations: number, values: number): Anchors {
  return { relMin: new Float64Array(relations).fill(Infinity), valMin: new Float64Array(values).fill(Infinity) };
}

/** Takes a kept triple (relation id `r`, value id `v`, hash `u`) into account. */
export function noteAnchor(a: Anchors, r: number, v: number, u: number): void {
  if (u < a.relMin[r]!) a.relMin[r] = u;
  if (u < a.valMin[v]!) a.valMin[v] = u;
}

/** A kept triple with its relation id, value id and hash. */
export interface Hashed<T> {
  t: T;
  r: number;
  v: number;
  u: number;
}

/**
 * The sets of one item's kept triples: by hash, with the three guards (a relation's or value's
 * lowest-hash triple stays in train; an item keeps at least its lowest-hash triple in train).
 */
export function assignSets<T>(kept: readonly Hashed<T>[], anchors: Anchors, ratio: number): (Hashed<T> & { set: HoldoutSet })[] {
  const placed = kept.map((k) => {
    const set = holdoutSetOf(k.u, ratio);
    return { ...k, set: set !== 'train' && (k.u === anchors.relMin[k.r] || k.u === anchors.valMin[k.v]) ? ('train' as const) : set };
  });
  if (placed.length && placed.every((k) => k.set !== 'train')) {
    let lowest = placed[0]!;
    for (const k of placed) if (k.u < lowest.u) lowest = k;
    lowest.set = 'train';
  }
  return placed;
}

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

/**
 * @file The corruption grid of issue 7: each corruption kind at each rate, applied to the
 * evaluation side of a task at evaluation time with a fixed seed.
 *
 * Kinds (a frozen registry, so the CLI's `--kinds` is checked against it): one modality missing
 * or noisy at a time, and title+image together. The operations are the data path's
 * (src/data/corrupt.ts: `selectExact`, `withoutModality`, `withModalityOf`, `derangement`), so a
 * missing or noisy modality at evaluation is exactly what pretraining simulated:
 *
 * - exactly round(r * n) items are corrupted, the first ones of a permutation seeded by
 *   (seed, kind), so the items corrupted at 20% are among those at 50%, 80% and 100%; rate 0
 *   returns the records untouched;
 * - "together" corrupts both modalities of the SAME selected items (r% of the items lose title
 *   and image; `corruptRecords` would draw each modality's items independently);
 * - a noise donor is never the item itself, and for title+image noise the title and the image
 *   come from two independent donors, so a corrupted item's title and image no longer match.
 */
import type { K3mRecord } from '@k3m-kit/lmdb-writer';
import { Rng } from '@k3m-kit/core';
import { derangement, selectExact, withModalityOf, withoutModality, type ItemCorruption, type Modality } from '../data/corrupt.ts';
import { mapItems, type Items } from './items.ts';

export interface CorruptionKind {
  /** What happens to the selected modalities. */
  effect: 'missing' | 'noise';
  modalities: readonly Modality[];
  /** The row label in tables. */
  label: string;
}

export const CORRUPTION_KINDS = Object.freeze({
  'missing-title': { effect: 'missing', modalities: ['title'], label: 'missing title' },
  'missing-image': { effect: 'missing', modalities: ['image'], label: 'missing image' },
  'missing-knowledge': { effect: 'missing', modalities: ['knowledge'], label: 'missing knowledge' },
  'missing-title-image': { effect: 'missing', modalities: ['title', 'image'], label: 'missing title+image' },
  'noisy-title': { effect: 'noise', modalities: ['title'], label: 'noisy title' },
  'noisy-image': { effect: 'noise', modalities: ['image'], label: 'noisy image' },
  'noisy-title-image': { effect: 'noise', modalities: ['title', 'image'], label: 'noisy title+image' },
} as const satisfies Record<string, CorruptionKind>);
export type CorruptionKindName = keyof typeof CORRUPTION_KINDS;

/** The rates. */
export const DEFAULT_RATES: readonly number[] = Object.freeze([0, 0.2, 0.5, 0.8, 1]);

/** One row of the grid. Rate 0 is the single `clean` cell shared by every kind. */
export interface GridCell {
  /** `clean`, or `<kind>@<percent>` such as `missing-title@50`. */
  id: string;
  kind: CorruptionKindName | 'clean';
  rate: number;
}

export const CLEAN_CELL: GridCell = Object.freeze({ id: 'clean', kind: 'clean', rate: 0 });

/**
 * The clean cell followed by every kind at every non-zero rate, kinds in registry order.
 * @example corruptionGrid(['missing-title'], [0, 0.5]).map((c) => c.id) // ['clean', 'missing-title@50']
 */
export function corruptionGrid(
  kinds: readonly CorruptionKindName[] = Object.keys(CORRUPTION_KINDS) as CorruptionKindName[],
  rates: readonly number[] = DEFAULT_RATES,
): GridCell[] {
  const cells: GridCell[] = [CLEAN_CELL];
  for (const kind of kinds) {
    for (const rate of rates) if (rate > 0) cells.push({ id: `${kind}@${Math.round(rate * 100)}`, kind, rate });
  }
  return cells;
}

export interface CorruptedSet {
  /** The items as the cell shows them (corrupted when read). */
  items: Items;
  /** Indices of the items that were corrupted, ascending. */
  corrupted: number[];
  /** Per item, what happened to it (`null` = untouched), as the data path reports it. */
  applied: (ItemCorruption | null)[];
}

/** The record `r` of item `i` with `kind` done to it; noise comes from the donor's uncorrupted record. */
function corruptOne(items: Items, i: number, r: K3mRecord, kind: CorruptionKind, donors: Partial<Record<Modality, Int32Array>>): K3mRecord {
  let out = r;
  for (const m of kind.modalities) out = kind.effect === 'missing' ? withoutModality(out, m) : withModalityOf(out, m, items.get(donors[m]![i]!));
  return out;
}

/**
 * Applies one grid cell to `items` (the evaluation side of a task). The same (items, cell,
 * seed) always give the same result; nothing is read until a corrupted item is.
 */
export function applyCell(items: Items, cell: GridCell, seed: number): CorruptedSet {
  const n = items.length;
  const applied: (ItemCorruption | null)[] = Array.from({ length: n }, () => null);
  if (cell.kind === 'clean' || cell.rate === 0 || n === 0) return { items, corrupted: [], applied };
  const kind: CorruptionKind = CORRUPTION_KINDS[cell.kind];
  const corrupted = selectExact(n, cell.rate, Rng.from(seed, 'eval-corruption', cell.kind, 'select'));
  const donors: Partial<Record<Modality, Int32Array>> = {};
  if (kind.effect === 'noise') {
    for (const m of kind.modalities) donors[m] = derangement(n, Rng.from(seed, 'eval-corruption', cell.kind, 'donor', m));
  }
  for (const i of corrupted) {
    const item: ItemCorruption = { missing: [], noise: {} };
    for (const m of kind.modalities) {
      if (kind.effect === 'missing') item.missing.push(m);
      else item.noise[m] = donors[m]![i]!;
    }
    applied[i] = item;
  }
  return { items: mapItems(items, (r, i) => (applied[i] ? corruptOne(items, i, r, kind, donors) : r)), corrupted, applied };
}

/**
 * The items with a seeded `share` of them corrupted, the kinds dealt out round-robin over those
 * (each kind hits about share * n / kinds items; noise donors come from all items). Used for
 * the side the probes are fitted on, so a probe does not learn to lean on features that only
 * clean inputs have, at no extra encoding cost.
 */
export function mixedCorruption(items: Items, kinds: readonly CorruptionKindName[], share: number, seed: number): Items {
  const n = items.length;
  if (kinds.length === 0 || n < 2 || share <= 0) return items;
  const chosen = selectExact(n, share, Rng.from(seed, 'fit-corruption', 'select'));
  const order = Rng.from(seed, 'fit-corruption', 'deal').shuffle(chosen);
  const donors = {
    title: derangement(n, Rng.from(seed, 'fit-corruption', 'donor', 'title')),
    image: derangement(n, Rng.from(seed, 'fit-corruption', 'donor', 'image')),
    knowledge: derangement(n, Rng.from(seed, 'fit-corruption', 'donor', 'knowledge')),
  };
  const kindOf: (CorruptionKind | undefined)[] = new Array(n);
  order.forEach((i, pos) => (kindOf[i] = CORRUPTION_KINDS[kinds[pos % kinds.length]!]));
  return mapItems(items, (r, i) => (kindOf[i] ? corruptOne(items, i, r, kindOf[i], donors) : r));
}

/** Which modalities the model is shown; the others are blanked as missing. */
export type View = Readonly<Record<Modality, boolean>>;

export const FULL_VIEW: View = Object.freeze({ title: true, image: true, knowledge: true });

/** The record as `view` shows it. */
export function applyView(r: K3mRecord, view: View): K3mRecord {
  let out = r;
  for (const m of ['title', 'image', 'knowledge'] as const) if (!view[m]) out = withoutModality(out, m);
  return out;
}

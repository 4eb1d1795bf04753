import { describe, expect, it } from 'vitest';
import type { K3mRecord } from '@k3m-kit/lmdb-writer';
import {
  applyCell as applyCellToItems,
  applyView,
  mixedCorruption as mixedCorruptionOfItems,
  CLEAN_CELL,
  CORRUPTION_KINDS,
  corruptionGrid,
  type CorruptionKindName,
  type GridCell,
} from '../src/eval/grid.ts';
import { CachedEncoder, encodeItems, recordKey } from '../src/eval/encoder.ts';
import { itemsOf, type Items } from '../src/eval/items.ts';
import { FakeEncoder, makeRecords, toArray } from './eval-fixtures.ts';

/** The cell over in-memory records, every item read back. */
function applyCell(records: readonly K3mRecord[], c: GridCell, seed: number) {
  const out = applyCellToItems(itemsOf(records), c, seed);
  return { ...out, records: toArray(out.items) };
}
const mixedCorruption = (records: readonly K3mRecord[], kinds: readonly CorruptionKindName[], share: number, seed: number) =>
  toArray(mixedCorruptionOfItems(itemsOf(records), kinds, share, seed));

/** Items over records that count every read. */
function countingItems(records: readonly K3mRecord[]): Items & { reads: number[] } {
  const base = itemsOf(records);
  const reads: number[] = [];
  return { length: base.length, info: base.info, reads, get: (i) => (reads.push(i), base.get(i)) };
}

const KINDS = Object.keys(CORRUPTION_KINDS) as CorruptionKindName[];
const cell = (kind: CorruptionKindName, rate: number): GridCell => ({ id: `${kind}@${rate * 100}`, kind, rate });

describe('corruptionGrid', () => {
  it('is the clean cell plus every kind at 20, 50, 80 and 100%', () => {
    const g = corruptionGrid();
    expect(g).toHaveLength(1 + KINDS.length * 4);
    expect(g[0]).toBe(CLEAN_CELL);
    expect(g.map((c) => c.id)).toContain('noisy-title-image@80');
    expect(g.filter((c) => c.kind === 'missing-image').map((c) => c.rate)).toEqual([0.2, 0.5, 0.8, 1]);
  });
});

describe('applyCell', () => {
  const records = makeRecords(10);
  const keys = records.map(recordKey);

  it('leaves every record unchanged at 0% for every kind', () => {
    for (const kind of KINDS) {
      const out = applyCell(records, cell(kind, 0), 7);
      expect(out.corrupted).toEqual([]);
      expect(out.records.map(recordKey)).toEqual(keys);
    }
    expect(applyCell(records, CLEAN_CELL, 7).records.map(recordKey)).toEqual(keys);
  });

  it('corrupts exactly round(rate * n) items, every item at 100%', () => {
    for (const kind of KINDS) {
      for (const [rate, n] of [
        [0.2, 2],
        [0.5, 5],
        [0.8, 8],
        [1, 10],
      ] as const) {
        const out = applyCell(records, cell(kind, rate), 7);
        expect(out.corrupted).toHaveLength(n);
        const changed = out.records.map((r, i) => recordKey(r) !== keys[i]).filter(Boolean).length;
        expect(changed, `${kind}@${rate}`).toBe(n);
      }
    }
  });

  it('blanks exactly the named modalities when missing', () => {
    const out = applyCell(records, cell('missing-title-image', 1), 7).records;
    for (const [i, r] of out.entries()) {
      expect(r.caption).toBe('');
      expect(r.numBoxes).toBe(0);
      expect(r.features.length).toBe(0);
      expect(r.pv).toBe(records[i]!.pv);
      expect(r.category).toBe(records[i]!.category);
    }
    expect(applyCell(records, cell('missing-knowledge', 1), 7).records.every((r) => r.pv === '')).toBe(true);
  });

  it('never pairs an item with itself when adding noise, and uses independent donors for title+image', () => {
    for (const kind of ['noisy-title', 'noisy-image', 'noisy-title-image'] as const) {
      for (const seed of [1, 2, 3, 4, 5]) {
        const out = applyCell(records, cell(kind, 1), seed);
        for (const m of CORRUPTION_KINDS[kind].modalities) {
          const donors = out.applied.map((a) => a!.noise[m]!);
          donors.forEach((d, i) => expect(d).not.toBe(i));
          // every item donates exactly once
          expect([...donors].sort((a, b) => a - b)).toEqual([...records.keys()]);
          if (m === 'title') out.records.forEach((r, i) => expect(r.caption).toBe(records[donors[i]!]!.caption));
          if (m === 'image') out.records.forEach((r, i) => expect(r.features).toBe(records[donors[i]!]!.features));
        }
      }
    }
    const both = applyCell(records, cell('noisy-title-image', 1), 3).applied;
    expect(both.map((a) => a!.noise.title)).not.toEqual(both.map((a) => a!.noise.image));
  });

  it('corrupts the same items in both modalities for title+image together', () => {
    const out = applyCell(records, cell('missing-title-image', 0.5), 9);
    expect(out.corrupted).toHaveLength(5);
    out.records.forEach((r, i) => {
      const hit = out.corrupted.includes(i);
      expect(r.caption === '').toBe(hit);
      expect(r.numBoxes === 0).toBe(hit);
    });
  });

  it('is deterministic per seed and nests the corrupted items across rates', () => {
    const a = applyCell(records, cell('missing-image', 0.5), 11);
    const b = applyCell(records, cell('missing-image', 0.5), 11);
    expect(a.corrupted).toEqual(b.corrupted);
    const low = applyCell(records, cell('missing-image', 0.2), 11).corrupted;
    expect(low.every((i) => a.corrupted.includes(i))).toBe(true);
    expect(applyCell(records, cell('missing-image', 0.5), 12).corrupted).not.toEqual(a.corrupted);
  });

  it('does not modify its input and refuses noise with a single item', () => {
    const before = records.map(recordKey);
    applyCell(records, cell('noisy-title-image', 1), 1);
    applyCell(records, cell('missing-title-image', 1), 1);
    expect(records.map(recordKey)).toEqual(before);
    expect(() => applyCell(records.slice(0, 1), cell('noisy-title', 1), 1)).toThrow(/at least 2 items/);
  });

  it('reads nothing until an item is asked for, then only that item and its donor', () => {
    const items = countingItems(records);
    const out = applyCellToItems(items, cell('noisy-title', 1), 4);
    expect(items.reads).toEqual([]);
    const r = out.items.get(6);
    const donor = out.applied[6]!.noise.title!;
    expect(items.reads).toEqual([6, donor]);
    expect(r.caption).toBe(records[donor]!.caption);
    expect(out.items.info(6)).toEqual({ imageId: records[6]!.imageId, category: records[6]!.category });
  });
});

describe('mixedCorruption (the fit side)', () => {
  it('corrupts exactly the share, one kind per item, dealt round-robin', () => {
    const records = makeRecords(20);
    const kinds = ['missing-title', 'missing-image'] as const;
    const out = mixedCorruption(records, kinds, 0.5, 3);
    const noTitle = out.filter((r) => r.caption === '').length;
    const noImage = out.filter((r) => r.numBoxes === 0).length;
    expect([noTitle, noImage]).toEqual([5, 5]);
    expect(out.filter((r) => r.caption === '' && r.numBoxes === 0)).toHaveLength(0);
    expect(mixedCorruption(records, kinds, 0, 3)).toEqual(records);
    expect(mixedCorruption(records, [], 0.5, 3)).toEqual(records);
    expect(mixedCorruption(records, kinds, 0.5, 3).map(recordKey)).toEqual(out.map(recordKey));
  });
});

describe('views and the encoding cache', () => {
  it('blanks the hidden modalities', () => {
    const [r] = makeRecords(1);
    const v = applyView(r!, { title: false, image: true, knowledge: false });
    expect([v.caption, v.pv, v.numBoxes]).toEqual(['', '', r!.numBoxes]);
  });

  it('encodes each distinct input once across a whole grid', async () => {
    const records = makeRecords(10);
    const fake = new FakeEncoder();
    const enc = new CachedEncoder(fake, 4);
    const imageOnly = { title: false, image: true, knowledge: false };
    for (const c of corruptionGrid(['missing-title', 'noisy-title'])) {
      await enc.encode(applyCell(records, c, 1).records.map((r) => applyView(r, imageOnly)));
    }
    // Title corruption is invisible to an image-only view: 10 encodings for 9 cells.
    expect(fake.calls).toBe(10);
    const direct = await fake.encode(records);
    const cached = await enc.encode(records);
    expect(cached.data).toEqual(direct.data);
  });

  it('encodes items chunk by chunk into the same rows as one call', async () => {
    const records = makeRecords(10);
    const items = countingItems(records);
    const fake = new FakeEncoder();
    const chunks: number[] = [];
    const spy = { dim: fake.dim, encode: (rs: readonly K3mRecord[]) => (chunks.push(rs.length), fake.encode(rs)) };
    const rows = await encodeItems(spy, items, 4);
    expect(chunks).toEqual([4, 4, 2]);
    expect(items.reads).toEqual([...records.keys()]);
    expect(rows.data).toEqual((await new FakeEncoder().encode(records)).data);
  });
});

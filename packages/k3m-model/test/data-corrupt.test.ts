/**
 * Modality-missing and modality-noise simulation: rate 0 leaves inputs unchanged, rate 1
 * corrupts every item, exact rates corrupt round(rate * n) items (nested across rates), noise
 * never pairs an item with itself, inputs are never modified.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MODALITIES, corruptRecords, derangement, resolveCorruptionRates, selectExact, type CorruptionRates, type Modality } from '../src/data/corrupt.ts';
import { Rng } from '@k3m-kit/core';
import { makeRecord } from '../src/data/testing.ts';

const records = (n: number) =>
  Array.from({ length: n }, (_, i) => makeRecord({ imageId: `item${i}`, caption: `title ${i}`, pv: `p:v${i};`, numBoxes: 1 + (i % 3), featureDim: 4, numClasses: 3, seed: i }));

const DROP = { title: 'dropTitle', image: 'dropImage', knowledge: 'dropKnowledge' } as const;
const NOISE = { title: 'noiseTitle', image: 'noiseImage', knowledge: 'noiseKnowledge' } as const;
const content = (r: ReturnType<typeof makeRecord>, m: Modality) => (m === 'title' ? r.caption : m === 'knowledge' ? r.pv : r.features);

describe('corruptRecords', () => {
  it('at rate 0 returns the very same records', () => {
    const rs = records(7);
    for (const exact of [false, true]) {
      const out = corruptRecords(rs, {}, Rng.from(1), { exact });
      out.records.forEach((r, i) => expect(r).toBe(rs[i]));
      expect(out.applied.every((a) => a === null)).toBe(true);
    }
  });

  for (const m of MODALITIES) {
    it(`at drop rate 1 blanks the ${m} of every item`, () => {
      const rs = records(5);
      const out = corruptRecords(rs, { [DROP[m]]: 1 }, Rng.from(2));
      for (const [i, r] of out.records.entries()) {
        if (m === 'title') expect(r.caption).toBe('');
        if (m === 'knowledge') expect(r.pv).toBe('');
        if (m === 'image') expect([r.numBoxes, r.features.length, r.boxes.length, r.clsProb.length]).toEqual([0, 0, 0, 0]);
        expect(out.applied[i]!.missing).toEqual([m]);
        expect(r.imageId).toBe(rs[i]!.imageId);
      }
    });

    it(`at noise rate 1 gives every item another item's ${m}`, () => {
      const rs = records(6);
      const out = corruptRecords(rs, { [NOISE[m]]: 1 }, Rng.from(3));
      for (const [i, r] of out.records.entries()) {
        const donor = out.applied[i]!.noise[m]!;
        expect(donor).not.toBe(i);
        expect(content(r, m)).toBe(content(rs[donor]!, m));
        expect(content(r, m)).not.toBe(content(rs[i]!, m));
        expect(r.imageId).toBe(rs[i]!.imageId);
      }
    });
  }

  it('corrupts exactly round(rate * n) items with exact rates, nested across rates', () => {
    const rs = records(23);
    let previous = new Set<number>();
    for (const rate of [0, 0.1, 0.25, 0.5, 0.8, 1]) {
      const out = corruptRecords(rs, { dropImage: rate }, Rng.from('eval', 9), { exact: true });
      const hit = out.applied.flatMap((a, i) => (a ? [i] : []));
      expect(hit.length).toBe(Math.round(rate * 23));
      for (const i of previous) expect(hit).toContain(i);
      previous = new Set(hit);
    }
    expect(selectExact(10, 0.25, Rng.from(1)).length).toBe(3);
  });

  it('draws about `rate` of the items independently in probability mode', () => {
    const rs = records(2000);
    const out = corruptRecords(rs, { dropTitle: 0.3, noiseKnowledge: 0.1 }, Rng.from(4));
    const drop = out.applied.filter((a) => a?.missing.includes('title')).length / 2000;
    const noise = out.applied.filter((a) => a?.noise.knowledge !== undefined).length / 2000;
    expect(drop).toBeGreaterThan(0.27);
    expect(drop).toBeLessThan(0.33);
    expect(noise).toBeGreaterThan(0.08);
    expect(noise).toBeLessThan(0.12);
  });

  it('lets missing win over noise of the same modality', () => {
    const rs = records(4);
    const out = corruptRecords(rs, { noiseTitle: 1, dropTitle: 1 }, Rng.from(5));
    expect(out.records.every((r) => r.caption === '')).toBe(true);
    expect(out.applied.every((a) => a!.noise.title === undefined && a!.missing.includes('title'))).toBe(true);
  });

  it('never pairs an item with itself and never modifies its input (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 12 }),
        fc.record({ dropTitle: fc.double({ min: 0, max: 1, noNaN: true }), noiseTitle: fc.double({ min: 0, max: 1, noNaN: true }), noiseImage: fc.double({ min: 0, max: 1, noNaN: true }), noiseKnowledge: fc.double({ min: 0, max: 1, noNaN: true }) }),
        fc.integer(),
        fc.boolean(),
        (n, rates: CorruptionRates, seed, exact) => {
          const rs = records(n);
          const before = rs.map((r) => ({ ...r }));
          const out = corruptRecords(rs, rates, Rng.from(seed), { exact });
          rs.forEach((r, i) => expect(r).toEqual(before[i]));
          out.applied.forEach((a, i) => {
            for (const d of Object.values(a?.noise ?? {})) expect(d).not.toBe(i);
          });
          const again = corruptRecords(rs, rates, Rng.from(seed), { exact });
          expect(again.applied).toEqual(out.applied);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('refuses noise with fewer than 2 items and rates outside [0, 1]', () => {
    expect(() => corruptRecords(records(1), { noiseImage: 1 }, Rng.from(1))).toThrow(/at least 2 items/);
    expect(() => resolveCorruptionRates({ dropImage: 1.2 })).toThrow(/dropImage \(--drop-image\) = 1.2/);
    expect(() => derangement(1, Rng.from(1))).toThrow();
  });
});

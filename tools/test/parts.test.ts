import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CATEGORIES, COLOUR_NAMES, SHAPE_BY_VALUE, shapeFor } from '../sample/catalogue.ts';
import { FAULT_KIND_NAMES, faultCount, minimumLines, planFaults } from '../sample/faults.ts';
import { centreColour, paintImage } from '../sample/image.ts';
import { MAX_PAIRS, MIN_PAIRS, makeItem } from '../sample/item.ts';
import { Rng } from '@k3m-kit/core';

describe('Rng', () => {
  it('gives equal streams for equal keys and different ones otherwise', () => {
    const draw = (r: Rng) => Array.from({ length: 8 }, () => r.u32());
    expect(draw(Rng.from(1, 'train', 3))).toEqual(draw(Rng.from(1, 'train', 3)));
    expect(draw(Rng.from(1, 'train', 3))).not.toEqual(draw(Rng.from(1, 'train', 4)));
    expect(draw(Rng.from(1, 'train', 3))).not.toEqual(draw(Rng.from(2, 'train', 3)));
  });

  it('stays in range and reaches both ends', () => {
    const r = Rng.from('range');
    const seen = new Set<number>();
    for (let i = 0; i < 2000; i++) {
      const x = r.intIn(3, 7);
      expect(x).toBeGreaterThanOrEqual(3);
      expect(x).toBeLessThanOrEqual(7);
      seen.add(x);
    }
    expect([...seen].sort()).toEqual([3, 4, 5, 6, 7]);
  });
});

describe('makeItem', () => {
  it('always has 3-15 pairs with 颜色 (and 形状 where the category has it), distinct properties, values from the catalogue', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1e9 }), fc.constantFrom(...CATEGORIES), (seed, category) => {
        const item = makeItem(Rng.from(seed), category);
        expect(item.pairs.length).toBeGreaterThanOrEqual(MIN_PAIRS);
        expect(item.pairs.length).toBeLessThanOrEqual(MAX_PAIRS);
        const props = item.pairs.map(([p]) => p);
        expect(new Set(props).size).toBe(props.length);
        expect(props).toContain('颜色');
        if (category.properties.some((p) => p.name === '形状')) expect(props).toContain('形状');
        for (const [p, v] of item.pairs) expect(item.attributes.get(p)).toBe(v);
        expect(COLOUR_NAMES).toContain(item.colour);
        expect(item.shape).toBe(shapeFor(category, item.attributes.get('形状')));
        expect(item.title.length).toBeGreaterThan(0);
        expect(item.title).not.toMatch(/[\t\r\n#]/);
      }),
      { numRuns: 300 },
    );
  });

  it('uses values free of the raw format separators', () => {
    for (const c of CATEGORIES) {
      for (const p of c.properties) for (const v of [p.name, ...p.values]) expect(v).toMatch(/^[^#:;\t\r\n]+$/);
    }
    expect(Object.keys(SHAPE_BY_VALUE).length).toBeGreaterThanOrEqual(3);
  });
});

describe('planFaults', () => {
  it('gives every fault its count on distinct lines, keeps line 1 clean, and duplicates an earlier clean line', () => {
    fc.assert(
      fc.property(fc.integer({ min: minimumLines(), max: 2000 }), fc.integer({ min: 0, max: 1e6 }), (n, seed) => {
        const plan = planFaults(Rng.from(seed), n);
        expect(plan.kinds.has(0)).toBe(false);
        for (const k of FAULT_KIND_NAMES) {
          expect([...plan.kinds.values()].filter((x) => x === k)).toHaveLength(faultCount(k, n));
        }
        for (const [i, target] of plan.duplicateOf) {
          expect(plan.kinds.get(i)).toBe('duplicate-id');
          expect(target).toBeLessThan(i);
          expect(plan.kinds.has(target)).toBe(false);
        }
      }),
      { numRuns: 100 },
    );
  });

  it('counts round half up with a floor of one per file', () => {
    expect(faultCount('image-not-found', 600)).toBe(18);
    expect(faultCount('image-not-found', 150)).toBe(5);
    expect(faultCount('four-fields', 150)).toBe(1);
    expect(faultCount('invalid-utf8', 100_000)).toBe(1);
  });
});

describe('paintImage', () => {
  it('shows its colour in the centre for every colour and shape', () => {
    const shapes = new Set([...CATEGORIES.map((c) => c.shape), ...Object.values(SHAPE_BY_VALUE)]);
    let i = 0;
    for (const shape of shapes) {
      for (const colour of COLOUR_NAMES) {
        const got = centreColour(paintImage(Rng.from('paint', i++), colour, shape));
        expect(got.colour, `${colour} ${shape}`).toBe(colour);
        expect(got.share).toBeGreaterThan(0.6);
      }
    }
  });
});

import { describe, expect, it } from 'vitest';
import { buildCompletionSplit, withoutPairs, type KgTables } from '../src/eval/completion.ts';
import { makeRecords } from './eval-fixtures.ts';

describe('withoutPairs', () => {
  it('removes exactly the named pairs and keeps the text form', () => {
    expect(withoutPairs('颜色:红色;材质:棉;颜色:蓝色;', [{ p: '颜色', v: '红色' }])).toBe('材质:棉;颜色:蓝色;');
    expect(withoutPairs('颜色:红色;', [{ p: '颜色', v: '红色' }])).toBe('');
    expect(withoutPairs('颜色:红色;', [])).toBe('颜色:红色;');
  });
});

describe('buildCompletionSplit', () => {
  // Values 0..3 (colours), then items img0..img5. Relation 0 颜色, 1 编号 is unused.
  const records = new Map(makeRecords(6).map((r) => [r.imageId, r]));
  const kg: KgTables = {
    entities: ['红色', '蓝色', '绿色', '黑色', ...[0, 1, 2, 3, 4, 5].map((i) => `item:img${i}`)],
    relations: ['颜色', '编号'],
    train: [
      [4, 0, 0], // img0 红色
      [5, 1, 0], // img1 蓝色
      [6, 2, 0], // img2 绿色
      [8, 0, 0], // img4 红色
    ],
    valid: [[7, 3, 0]], // img3 黑色
    test: [
      [9, 1, 0], // img5 蓝色
      [4, 2, 0], // img0 also 绿色 (a second value for the same property)
      [99, 0, 0], // unknown entity: ignored
    ],
  };
  const split = buildCompletionSplit(kg, records, { seed: 1, maxEvalTriples: 0, maxFitItems: 0, hidePerItem: 1 });

  it('asks the test triples of items shown without their held-out pairs, filtered', () => {
    expect(split.values).toEqual(['红色', '蓝色', '绿色', '黑色']);
    expect(split.evalItems.sort()).toEqual(['img0', 'img5']);
    expect(split.evalExamples).toHaveLength(2);
    const img5 = split.evalExamples.find((e) => split.evalItems[e.record] === 'img5')!;
    expect(img5).toMatchObject({ relation: 0, value: 1 });
    expect(split.evalRecords[img5.record]!.pv).toBe('编号:5;'); // '颜色:蓝色;' removed
    const img0 = split.evalExamples.find((e) => split.evalItems[e.record] === 'img0')!;
    expect([...img0.alsoTrue!]).toEqual([0]); // 红色 is also true for img0's colour (train)
  });

  it('fits on items without held-out triples, hiding their training pairs', () => {
    expect(split.fitItems.sort()).toEqual(['img1', 'img2', 'img4']);
    for (const e of split.fitExamples) {
      expect(split.fitRecords[e.record]!.pv).not.toContain('颜色');
    }
    expect(split.numRelations).toBe(2);
  });

  it('caps evaluation at whole items and is deterministic', () => {
    const capped = buildCompletionSplit(kg, records, { seed: 1, maxEvalTriples: 1, maxFitItems: 2, hidePerItem: 1 });
    expect(capped.evalExamples).toHaveLength(1);
    expect(capped.fitItems).toHaveLength(2);
    expect(buildCompletionSplit(kg, records, { seed: 1, maxEvalTriples: 1, maxFitItems: 2, hidePerItem: 1 })).toEqual(capped);
  });
});

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildCompletionSplit as buildOverItems, readKgTables, withoutPairs, type CompletionSplitOptions, type KgTables } from '../src/eval/completion.ts';
import { itemsOf } from '../src/eval/items.ts';
import type { K3mRecord } from '@k3m-kit/lmdb-writer';
import { makeRecords, toArray } from './eval-fixtures.ts';

/** The split over in-memory records, every item read back. */
function buildCompletionSplit(kg: KgTables, fit: readonly K3mRecord[], evalSide: readonly K3mRecord[], opts: CompletionSplitOptions) {
  const s = buildOverItems(kg, itemsOf(fit), itemsOf(evalSide), opts);
  return { ...s, fitRecords: toArray(s.fitRecords), evalRecords: toArray(s.evalRecords) };
}

describe('withoutPairs', () => {
  it('removes exactly the named pairs and keeps the text form', () => {
    expect(withoutPairs('颜色:红色;材质:棉;颜色:蓝色;', [{ p: '颜色', v: '红色' }])).toBe('材质:棉;颜色:蓝色;');
    expect(withoutPairs('颜色:红色;', [{ p: '颜色', v: '红色' }])).toBe('');
    expect(withoutPairs('颜色:红色;', [])).toBe('颜色:红色;');
  });
});

describe('buildCompletionSplit', () => {
  // Values 0..3 (colours), then items img0..img5. Relation 0 颜色, 1 编号 is unused.
  const records = makeRecords(6);
  const fit = records.slice(0, 4);
  const evalSide = records.slice(4);
  const kg: KgTables = {
    entities: ['红色', '蓝色', '绿色', '黑色', ...[0, 1, 2, 3, 4, 5].map((i) => `item:img${i}`)],
    relations: ['颜色', '编号'],
    train: [
      [4, 0, 0], // img0 红色
      [5, 1, 0], // img1 蓝色
      [6, 2, 0], // img2 绿色
      [8, 0, 0], // img4 红色
    ],
    valid: [[7, 3, 0]], // img3 黑色 (a fit item: hidden, not asked)
    test: [
      [9, 1, 0], // img5 蓝色
      [8, 2, 0], // img4 also 绿色 (a second value for the same property)
      [99, 0, 0], // unknown entity: ignored
    ],
  };
  const split = buildCompletionSplit(kg, fit, evalSide, { seed: 1, hidePerItem: 1 });

  it('asks the held-out triples of the evaluation items, shown without them, filtered', () => {
    expect(split.values).toEqual(['红色', '蓝色', '绿色', '黑色']);
    expect(split.evalRecords.map((r) => r.imageId)).toEqual(['img4', 'img5']);
    expect(split.evalExamples).toEqual([
      { record: 0, relation: 0, value: 2, alsoTrue: new Set([0]) }, // 红色 also true for img4 (train)
      { record: 1, relation: 0, value: 1, alsoTrue: new Set() },
    ]);
    expect(split.evalRecords[1]!.pv).toBe('编号:5;'); // '颜色:蓝色;' removed
    expect(split.evalRecords[0]!.pv).toBe(evalSide[0]!.pv); // 颜色:红色 is a train pair: img4 keeps it ('绿色' was never in its text)
  });

  it('hides and asks training pairs of the fit items, and hides their held-out pairs too', () => {
    expect(split.fitExamples).toEqual([
      { record: 0, relation: 0, value: 0 },
      { record: 1, relation: 0, value: 1 },
      { record: 2, relation: 0, value: 2 },
    ]);
    for (const r of split.fitRecords.slice(0, 3)) expect(r.pv).not.toContain('颜色');
    expect(split.fitRecords[3]!.pv).toBe('编号:3;'); // img3's held-out (valid) pair 颜色:黑色 is hidden, not asked
    expect(split.numRelations).toBe(2);
    expect(split.unusedHeldOut).toBe(0);
  });

  it('is deterministic and keeps records without triples unchanged', () => {
    expect(buildCompletionSplit(kg, fit, evalSide, { seed: 1, hidePerItem: 1 })).toEqual(split);
    const none = buildCompletionSplit({ ...kg, train: [], valid: [], test: [] }, fit, evalSide, { seed: 1, hidePerItem: 2 });
    expect(none.fitRecords).toEqual(fit);
    expect(none.evalExamples).toEqual([]);
  });
});

describe('readKgTables', () => {
  it('keeps only the triples of the chosen items and counts the held-out ones it skipped', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'k3m-eval-kg-'));
    try {
      const openke = (rows: string[]) => `${rows.length}\n${rows.join('\n')}\n`;
      // Entities: values 红色 0, 蓝色 1; items img0..img3 = 2..5. Triples are `head tail relation`.
      writeFileSync(join(dir, 'entity2id.txt'), openke(['红色\t0', '蓝色\t1', 'item:img0\t2', 'item:img1\t3', 'item:img2\t4', 'item:img3\t5']));
      writeFileSync(join(dir, 'relation2id.txt'), openke(['颜色\t0']));
      writeFileSync(join(dir, 'train2id.txt'), openke(['2 0 0', '3 1 0', '4 0 0']));
      writeFileSync(join(dir, 'valid2id.txt'), openke(['5 1 0']));
      writeFileSync(join(dir, 'test2id.txt'), openke(['2 1 0', '4 1 0']));
      const all = (await readKgTables(dir))!;
      expect([all.train.length, all.valid.length, all.test.length, all.skippedHeldOut]).toEqual([3, 1, 2, 0]);
      const some = (await readKgTables(dir, new Set(['img0', 'img1'])))!;
      expect(some.train).toEqual([
        [2, 0, 0],
        [3, 1, 0],
      ]);
      expect(some.valid).toEqual([]);
      expect(some.test).toEqual([[2, 1, 0]]);
      expect(some.skippedHeldOut).toBe(2);
      // The questions about the chosen items do not depend on the filter, nor does the count of the others'.
      const records = makeRecords(4);
      const full = buildCompletionSplit(all, records.slice(0, 1), records.slice(1, 2), { seed: 1, hidePerItem: 1 });
      const filtered = buildCompletionSplit(some, records.slice(0, 1), records.slice(1, 2), { seed: 1, hidePerItem: 1 });
      expect(filtered).toEqual(full);
      expect(filtered.unusedHeldOut).toBe(2);
      expect(await readKgTables(join(dir, 'missing'))).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

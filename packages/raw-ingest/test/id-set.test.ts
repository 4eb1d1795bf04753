/** The fingerprint table behind the duplicate check and TaiSu's caption index. */
import { describe, expect, it } from 'vitest';
import { FingerprintTable } from '../src/id-set.ts';

describe('FingerprintTable', () => {
  it('tells new ids from seen ones across many growths, and keeps each value', () => {
    const t = new FingerprintTable(true);
    const ids = Array.from({ length: 60_000 }, (_, i) => (i % 3 === 0 ? `img${i}baiducomitu${i * 7}` : String(600_000_000_000 + i * 13)));
    ids.forEach((id, i) => expect(t.add(id, i)).toBe(true));
    ids.forEach((id) => expect(t.add(id, 0)).toBe(false));
    for (let i = 0; i < ids.length; i += 997) expect(t.get(ids[i]!)).toBe(i);
    expect(t.has('')).toBe(false);
    expect(t.add('')).toBe(true);
    expect(t.has('')).toBe(true);
    // Ids that differ only in order, case or one code unit are different ids.
    for (const [a, b] of [['ab', 'ba'], ['Img1', 'img1'], ['标题1', '标题2'], ['1', '1\u0000']]) {
      const u = new FingerprintTable();
      expect(u.add(a!)).toBe(true);
      expect(u.add(b!)).toBe(true);
    }
    expect(new FingerprintTable().get('x')).toBeUndefined();
  });
});

import { describe, expect, it } from 'vitest';
import { Rng } from '../src/rng.ts';

const draws = (r: Rng, n: number) => Array.from({ length: n }, () => r.u32());

describe('Rng (sfc32 seeded by splitmix32)', () => {
  it('gives the published sfc32 sequence for a known state', () => {
    // PractRand's sfc32 by hand from a=b=c=0, counter=1 (tmp = a+b+counter++; a = b^(b>>9);
    // b = c+(c<<3); c = rotl(c,21)+tmp): 1; 2 (b=9, c=0x200002); 12 (a=9, b=0x1200012,
    // c=0x40040c); 9+0x1200012+4.
    const r = Rng.fromState([0, 0, 0, 1]);
    expect(draws(r, 4)).toEqual([1, 2, 12, 0x120001f]);
  });

  it('is a function of its seed or key, and keys are independent streams', () => {
    expect(draws(new Rng(42), 8)).toEqual(draws(new Rng(42), 8));
    expect(draws(new Rng(42), 8)).not.toEqual(draws(new Rng(43), 8));
    expect(draws(Rng.from(1, 'train', 7), 8)).toEqual(draws(Rng.from(1, 'train', 7), 8));
    expect(draws(Rng.from(1, 'train', 7), 8)).not.toEqual(draws(Rng.from(1, 'train', 8), 8));
    // the separator keeps ('ab', 'c') and ('a', 'bc') apart
    expect(draws(Rng.from('ab', 'c'), 4)).not.toEqual(draws(Rng.from('a', 'bc'), 4));
  });

  it('saves and restores its state mid-stream (what checkpoints need)', () => {
    const a = new Rng(7);
    draws(a, 100);
    const saved = JSON.parse(JSON.stringify(a.state)) as number[];
    const tail = draws(a, 50);
    expect(draws(Rng.fromState(saved), 50)).toEqual(tail);
    const b = new Rng(1);
    b.state = saved;
    expect(draws(b, 50)).toEqual(tail);
    expect(() => Rng.fromState([1, 2, 3])).toThrow(/four uint32 words/);
    expect(() => Rng.fromState([1, 2, 3, -1])).toThrow(/four uint32 words/);
  });

  it('fillMaskBits: the mask of u32 calls\' draws against the threshold, as int32 bits, and the same state after', () => {
    const bits = new Int32Array(new Float32Array([1 / 0.9]).buffer)[0]!;
    // fractional thresholds, whole ones (the draw equal to it is kept), and the ends of the range
    for (const threshold of [0.1 * 2 ** 32, 0.5 * 2 ** 32, 2 ** 31, 2 ** 31 + 1, 1e-9 * 2 ** 32, 0.999999 * 2 ** 32, 0, 2 ** 32]) {
      const a = new Rng(5);
      const b = new Rng(5);
      const draws = Array.from({ length: 5000 }, () => a.u32());
      const out = new Int32Array(5010).fill(3);
      b.fillMaskBits(out, 5, 5005, threshold, bits);
      expect(Array.from(out.subarray(5, 5005))).toEqual(Array.from(draws, (d) => (d >= threshold ? bits : 0)));
      expect([...out.subarray(0, 5), ...out.subarray(5005)]).toEqual(new Array(10).fill(3));
      expect(b.state).toEqual(a.state);
      expect(b.u32()).toBe(a.u32());
    }
    // the draws include some on each side of a mid-range threshold, and one equal to a whole one
    const at = Rng.fromState([0, 0, 0, 1]);
    const mask = at.fillMaskBits(new Int32Array(4), 0, 4, 12, -1);
    expect(Array.from(mask)).toEqual([0, 0, -1, -1]); // draws 1, 2, 12, 0x120001f
  });

  it('draws in range with the expected moments', () => {
    const r = new Rng(3);
    const n = 20000;
    let sum = 0;
    let sq = 0;
    let lo = Infinity;
    let hi = -Infinity;
    const counts = new Array(6).fill(0);
    for (let i = 0; i < n; i++) {
      const u = r.next();
      lo = Math.min(lo, u);
      hi = Math.max(hi, u);
      const z = r.normal();
      sum += z;
      sq += z * z;
      counts[r.intIn(0, 5)]++;
    }
    expect(lo).toBeGreaterThanOrEqual(0);
    expect(hi).toBeLessThan(1);
    expect(Math.abs(sum / n)).toBeLessThan(0.05);
    expect(Math.abs(sq / n - 1)).toBeLessThan(0.05);
    for (const c of counts) expect(Math.abs(c / n - 1 / 6)).toBeLessThan(0.02);
  });

  it('shuffles in place to a permutation and samples distinct items', () => {
    const r = new Rng(9);
    const a = Array.from({ length: 50 }, (_, i) => i);
    const s = r.shuffle(a);
    expect(s).toBe(a);
    expect([...s].sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(s).not.toEqual(Array.from({ length: 50 }, (_, i) => i));
    const pick = r.sample(['a', 'b', 'c', 'd'], 3);
    expect(new Set(pick).size).toBe(3);
    expect(() => r.pick([])).toThrow(/empty/);
  });

  it('forks child streams that differ from the parent and from each other', () => {
    const r = new Rng(5);
    const a = r.fork('a');
    const b = r.fork('a');
    expect(draws(a, 4)).not.toEqual(draws(b, 4));
  });
});

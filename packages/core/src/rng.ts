/**
 * @file The workspace's one seeded random generator: sfc32 (Chris Doty-Humphrey's Small Fast
 * Counting generator, 128-bit state), seeded through splitmix32. Its state is four words, so a
 * checkpoint can store it and a resumed run replays exactly the numbers an uninterrupted one
 * would have drawn. Streams keyed by names (`Rng.from(seed, 'epoch', 3, 'sample', 17)`) make a
 * draw depend only on what it is for, never on the order async work finishes.
 */

/** 32-bit FNV-1a over the UTF-16 code units of `s`: turns a stream's key into a seed. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** splitmix32: spreads one 32-bit seed over sfc32's four state words. */
function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** Separator of key parts; a character no key part contains. */
const KEY_SEP = '\u0001';

/**
 * A deterministic uniform stream with the draws the stages need.
 * @example
 * const rng = new Rng(42);
 * rng.next();                          // in [0, 1), same value on every platform
 * const saved = rng.state;             // four uint32 words, JSON-safe
 * Rng.fromState(saved).next() === rng.next(); // true
 */
export class Rng {
  private s: Uint32Array;

  /** A stream seeded from one integer. */
  constructor(seed: number) {
    const sm = splitmix32(seed);
    this.s = new Uint32Array([sm(), sm(), sm(), sm()]);
    // sfc32 needs a few rounds before its output stops echoing the seed.
    for (let i = 0; i < 12; i++) this.u32();
  }

  /** A stream keyed by any list of parts; equal keys give equal streams, distinct keys independent ones. */
  static from(...key: ReadonlyArray<string | number>): Rng {
    return new Rng(fnv1a(key.join(KEY_SEP)));
  }

  /** A stream continuing from a saved {@link Rng.state}. */
  static fromState(state: readonly number[]): Rng {
    if (state.length !== 4 || state.some((w) => !Number.isInteger(w) || w < 0 || w > 0xffffffff)) {
      throw new RangeError(`Rng state: expected four uint32 words, got ${JSON.stringify(state)}`);
    }
    const r = Object.create(Rng.prototype) as Rng;
    r.s = Uint32Array.from(state);
    return r;
  }

  /** The four state words; {@link Rng.fromState} resumes the stream from them. */
  get state(): number[] {
    return Array.from(this.s);
  }

  set state(v: readonly number[]) {
    this.s = Rng.fromState(v).s;
  }

  /** Next unsigned 32-bit integer (sfc32). */
  u32(): number {
    const s = this.s;
    const t = (((s[0]! + s[1]!) >>> 0) + s[3]!) >>> 0;
    s[3] = (s[3]! + 1) >>> 0;
    s[0] = s[1]! ^ (s[1]! >>> 9);
    s[1] = (s[2]! + (s[2]! << 3)) >>> 0;
    s[2] = ((s[2]! << 21) | (s[2]! >>> 11)) >>> 0;
    s[2] = (s[2]! + t) >>> 0;
    return t;
  }

  /**
   * `to - from` draws of {@link Rng.u32} turned into a mask, written as int32 bits into
   * `out[from..to)`: `bits` where the draw is at least `threshold`, else 0 (e.g. the float32 bits
   * of dropout's 1/(1-p) where the draw is not below p·2³²). The stream advances as `to - from`
   * calls of {@link Rng.u32} would. int32 arithmetic, no call per draw and a branch-free select,
   * where a fill of draws followed by a compare branched on every draw.
   */
  fillMaskBits(out: Int32Array, from: number, to: number, threshold: number, bits: number): Int32Array {
    const s = this.s;
    let a = s[0]! | 0;
    let b = s[1]! | 0;
    let c = s[2]! | 0;
    let d = s[3]! | 0;
    // draw >= threshold, compared as signed numbers (both shifted by 2^31).
    const at = Math.ceil(threshold) - 2147483648;
    for (let i = from; i < to; i++) {
      const t = (((a + b) | 0) + d) | 0;
      d = (d + 1) | 0;
      a = b ^ (b >>> 9);
      b = (c + (c << 3)) | 0;
      c = (((c << 21) | (c >>> 11)) + t) | 0;
      out[i] = -((t ^ -2147483648) >= at) & bits;
    }
    s[0] = a;
    s[1] = b;
    s[2] = c;
    s[3] = d;
    return out;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.u32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Uniform integer in [lo, hi], both ends included. */
  intIn(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  /** Uniform float in [lo, hi). */
  float(lo: number, hi: number): number {
    return lo + this.next() * (hi - lo);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** One element of a non-empty array. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('Rng.pick: empty array');
    return items[this.int(items.length)]!;
  }

  /** Standard normal (Box-Muller, one value per call so the state stays four words). */
  normal(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** Gumbel(0, 1) as torch draws it: -log of an Exponential(1). */
  gumbel(): number {
    const u = (this.u32() + 0.5) / 4294967296;
    return -Math.log(-Math.log(u));
  }

  /** Fisher-Yates, in place. */
  shuffle<T>(a: T[]): T[] {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i]!;
      a[i] = a[j]!;
      a[j] = t;
    }
    return a;
  }

  /** A child stream keyed by this stream's next draw and `parts` (e.g. one per subsystem). */
  fork(...parts: ReadonlyArray<string | number>): Rng {
    return Rng.from(this.u32(), ...parts);
  }

  /** `k` distinct items of `items`, in random order (a shuffled copy's first `k`). */
  sample<T>(items: readonly T[], k: number): T[] {
    return this.shuffle(items.slice()).slice(0, k);
  }
}

/**
 * @file The one random source of training: dropout masks, Gumbel noise and parameter init.
 * sfc32 with a serialisable 4-word state, so a checkpoint can store it and `--resume` replays
 * exactly the numbers an uninterrupted run would have drawn.
 */

export class Rng {
  private s: Uint32Array;

  constructor(seed: number | readonly number[]) {
    if (typeof seed === 'number') {
      this.s = new Uint32Array([0x9e3779b9, 0x243f6a88, 0xb7e15162, seed >>> 0]);
      for (let i = 0; i < 15; i++) this.nextU32();
    } else {
      this.s = Uint32Array.from(seed);
    }
  }

  nextU32(): number {
    const s = this.s;
    const t = (((s[0]! + s[1]!) >>> 0) + s[3]!) >>> 0;
    s[3] = (s[3]! + 1) >>> 0;
    s[0] = s[1]! ^ (s[1]! >>> 9);
    s[1] = (s[2]! + (s[2]! << 3)) >>> 0;
    s[2] = ((s[2]! << 21) | (s[2]! >>> 11)) >>> 0;
    s[2] = (s[2]! + t) >>> 0;
    return t;
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal (Box-Muller, one value per call so the state stays four words). */
  normal(): number {
    const u = 1 - this.uniform();
    const v = this.uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** Gumbel(0, 1) as torch draws it: −log of an Exponential(1). */
  gumbel(): number {
    const u = (this.nextU32() + 0.5) / 4294967296;
    return -Math.log(-Math.log(u));
  }

  /** A derived, independent generator (e.g. one per subsystem). */
  fork(): Rng {
    return new Rng([this.nextU32(), this.nextU32(), this.nextU32(), this.nextU32() | 1]);
  }

  get state(): number[] {
    return Array.from(this.s);
  }

  set state(v: readonly number[]) {
    this.s = Uint32Array.from(v);
  }
}

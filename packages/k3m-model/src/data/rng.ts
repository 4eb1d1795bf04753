/**
 * @file The data path's seeded random numbers. Every stochastic choice (shuffle, corruption,
 * title/region/knowledge masking) draws from an {@link Rng} derived from a seed and the names of
 * what it is for, so a sample's masking depends only on (seed, epoch, sample position) and a
 * resumed run replays exactly what an uninterrupted one would have drawn.
 */
import seedrandom from 'seedrandom';

/** A seeded uniform generator (seedrandom's Alea) with the helpers the data path needs. */
export class Rng {
  private readonly prng: seedrandom.PRNG;

  /**
   * @example
   * const rng = Rng.derive(42, 'epoch', 0, 'sample', 17);
   * rng.next(); // same value on every run
   */
  constructor(key: string) {
    this.prng = seedrandom.alea(key);
  }

  /** A generator keyed by the parts joined; distinct keys give independent streams. */
  static derive(...parts: ReadonlyArray<string | number>): Rng {
    return new Rng(parts.join('\u241f'));
  }

  /** A child stream, keyed by this stream's next draw and `parts`. */
  fork(...parts: ReadonlyArray<string | number>): Rng {
    return Rng.derive(this.prng.int32(), ...parts);
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.prng();
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.prng() * n);
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
}

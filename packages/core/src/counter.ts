/**
 * @file A counter of reasons (or any keys) with a cap on distinct keys, so a flood of unique
 * reasons keeps memory bounded.
 */

/** Counts by key, keeping at most `cap` distinct keys so a flood of unique reasons stays bounded. */
export class CappedCounter {
  readonly counts = new Map<string, number>();
  constructor(private readonly cap = 1000) {}

  add(key: string, n = 1): void {
    if (!this.counts.has(key) && this.counts.size >= this.cap) key = '(other)';
    this.counts.set(key, (this.counts.get(key) ?? 0) + n);
  }

  get total(): number {
    let t = 0;
    for (const v of this.counts.values()) t += v;
    return t;
  }

  /** Sorted by key, so reports are byte-stable. */
  toJSON(): Record<string, number> {
    return Object.fromEntries([...this.counts.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }
}

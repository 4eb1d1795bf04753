/**
 * @file The reject log: one JSON line per rejected record (`rejects/<stage>.jsonl`) with its
 * source, line and reason, and a capped counter of reasons for the report.
 * Lines are buffered to a temp file and appear under the final name on `commit()`.
 */
import { join } from 'node:path';
import { AtomicWriter } from './atomic.ts';

export interface RejectRecord {
  /** Input file or unit the record came from. */
  source: string;
  /** 1-based line number in `source`, when the input is line-oriented. */
  line?: number;
  /** Stable machine-readable reason, e.g. `field-count`, `duplicate-id`. */
  reason: string;
  /** Human-readable detail (the bad value, the expected form). */
  detail?: string;
  /** The record's id, when it has one. */
  id?: string;
}

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

export class RejectLog {
  readonly reasons = new CappedCounter();

  private constructor(private readonly writer: AtomicWriter) {}

  /** Opens `<workDir>/rejects/<name>.jsonl` (written on commit). */
  static async open(workDir: string, name: string): Promise<RejectLog> {
    return new RejectLog(await AtomicWriter.create(join(workDir, 'rejects', `${name}.jsonl`)));
  }

  get path(): string {
    return this.writer.target;
  }

  get count(): number {
    return this.reasons.total;
  }

  async add(rec: RejectRecord): Promise<void> {
    this.reasons.add(rec.reason);
    await this.writer.write(JSON.stringify(rec) + '\n');
  }

  commit(): Promise<void> {
    return this.writer.commit();
  }

  abort(): Promise<void> {
    return this.writer.abort();
  }
}

/**
 * @file The reject log: one JSON line per rejected record (`rejects/<stage>.jsonl`) with its
 * source, line and reason, and a capped counter of reasons for the report.
 * Lines are buffered to a temp file and appear under the final name on `commit()`.
 */
import { join } from 'node:path';
import { AtomicWriter } from './atomic.ts';
import { CappedCounter } from './counter.ts';
import type { Ledger } from './ledger.ts';

export { CappedCounter } from './counter.ts';

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

export class RejectLog {
  readonly reasons = new CappedCounter();

  private constructor(
    private readonly writer: AtomicWriter,
    private readonly ledger?: Ledger,
  ) {}

  /**
   * Opens `<workDir>/rejects/<name>.jsonl` (written on commit). With a `ledger`, every line
   * added is also counted there as rejected.
   */
  static async open(workDir: string, name: string, ledger?: Ledger): Promise<RejectLog> {
    return new RejectLog(await AtomicWriter.create(join(workDir, 'rejects', `${name}.jsonl`)), ledger);
  }

  get path(): string {
    return this.writer.target;
  }

  get count(): number {
    return this.reasons.total;
  }

  async add(rec: RejectRecord): Promise<void> {
    this.reasons.add(rec.reason);
    this.ledger?.rejected(rec.reason);
    await this.writer.write(JSON.stringify(rec) + '\n');
  }

  commit(): Promise<void> {
    return this.writer.commit();
  }

  abort(): Promise<void> {
    return this.writer.abort();
  }
}

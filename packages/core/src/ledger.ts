/**
 * @file The count ledger behind every stage report. A stage feeds it from three independent
 * places: its reader (`read`, once per input record as it streams), its writer (`wrote`, once
 * per record that reached the output) and its reject log (`rejected`, once per reject line).
 * `in` is therefore counted at the source, never derived from the other two, and
 * `reconciles` is a real comparison that fails when a record slipped through unaccounted.
 * A record deliberately left out that is not bad (training stopped by a step budget) is
 * `skipped`, with its reason, and counted where it is left.
 */
import { CappedCounter } from './counter.ts';

/** The accounting fields of a report (design.md section 5). */
export interface LedgerCounts {
  /** Records read from the input, counted as they streamed. */
  in: number;
  /** Records that reached the output, counted by the writer. */
  written: number;
  /** Records rejected, counted by the reject log, in total and by reason. */
  rejected: number;
  rejectedByReason: Record<string, number>;
  /** Records neither written nor bad, left out on purpose, by reason (absent when none). */
  skippedByReason?: Record<string, number>;
  /** `in === written + rejected + skipped`: false means a record was lost or counted twice. */
  reconciles: boolean;
}

/**
 * @example
 * const ledger = new Ledger();
 * for await (const rec of reader) { ledger.read(); if (ok(rec)) { await sink.write(rec); ledger.wrote(); } else await rejects.add(...); }
 * ledger.counts(); // { in, written, rejected, rejectedByReason, reconciles }
 */
export class Ledger {
  private nIn = 0;
  private nWritten = 0;
  private readonly reasons = new CappedCounter();
  private readonly skips = new CappedCounter();

  /** The reader saw `n` input records. */
  read(n = 1): void {
    this.nIn += n;
  }

  /** The writer put `n` records into the output. */
  wrote(n = 1): void {
    this.nWritten += n;
  }

  /** `n` records were rejected for `reason` (the reject log calls this for every line it writes). */
  rejected(reason: string, n = 1): void {
    this.reasons.add(reason, n);
  }

  /** `n` good records were left out on purpose for `reason` (e.g. a step budget ended the epoch). */
  skipped(reason: string, n = 1): void {
    if (n > 0) this.skips.add(reason, n);
  }

  /** Folds in the counts of a part (a shard's report, a worker's ledger). */
  addCounts(c: Pick<LedgerCounts, 'in' | 'written' | 'rejectedByReason' | 'skippedByReason'>): void {
    this.nIn += c.in;
    this.nWritten += c.written;
    for (const [reason, n] of Object.entries(c.rejectedByReason)) this.reasons.add(reason, n);
    for (const [reason, n] of Object.entries(c.skippedByReason ?? {})) this.skips.add(reason, n);
  }

  get in(): number {
    return this.nIn;
  }

  get written(): number {
    return this.nWritten;
  }

  get rejectedTotal(): number {
    return this.reasons.total;
  }

  get skippedTotal(): number {
    return this.skips.total;
  }

  /** The report fields, with `reconciles` compared from the independent counts. */
  counts(): LedgerCounts {
    const rejected = this.reasons.total;
    const skipped = this.skips.total;
    return {
      in: this.nIn,
      written: this.nWritten,
      rejected,
      rejectedByReason: this.reasons.toJSON(),
      ...(skipped ? { skippedByReason: this.skips.toJSON() } : {}),
      reconciles: this.nIn === this.nWritten + rejected + skipped,
    };
  }
}

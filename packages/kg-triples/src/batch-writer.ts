/**
 * @file Batches small writes into ~1 MiB chunks before they reach an {@link AtomicWriter}:
 * one write call per line made the stream's per-chunk cost dominate the whole stage.
 */
import type { AtomicWriter } from '@k3m-kit/core';

const FLUSH_AT = 1 << 20;

export class BatchWriter {
  private pending = '';

  constructor(readonly writer: AtomicWriter) {}

  /** Queues `text`; writes the batch once it is big enough (awaiting drain). */
  async write(text: string): Promise<void> {
    this.pending += text;
    if (this.pending.length >= FLUSH_AT) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.pending === '') return;
    const chunk = this.pending;
    this.pending = '';
    await this.writer.write(chunk);
  }

  async commit(): Promise<void> {
    await this.flush();
    await this.writer.commit();
  }

  abort(): Promise<void> {
    this.pending = '';
    return this.writer.abort();
  }
}


/**
 * @file The work on one segment this shard owns. Items arrive as the parse pass places them and
 * their images start at once (at most `concurrency` in flight over all segments: the parse pass
 * waits for a slot). Each item's row is written as soon as it and every item before it are done;
 * finished items waiting for a slow one before them (or for a slow disk) are bounded too (the
 * `rows` slots), so a segment never holds more than those in memory, whatever its size: the segment file, its extra-field sidecar and the status's list of
 * image-missing items (kept in a scratch file) all grow on disk. When the segment is full the job
 * waits for its last rows, commits the files and writes the status file, the completion marker.
 *
 * A segment whose marker exists is skipped (its items cost no work) unless `--retry-failed` asks
 * to reopen a segment with image-missing items; a reopened segment reuses every stored image.
 */
import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { AtomicWriter, IoError, type Progress } from '@k3m-kit/core';
import { encodeItemExtra, itemExtraFileName, type ItemExtra } from './codecs/item-extra.ts';
import { encodeSegmentRow, imageIdFor, segmentFileName, type SegmentEntry, type Split } from './codecs/segment.ts';
import { encodeMissingEntry, encodeSegmentStatusParts, readSegmentStatusHead, segmentStatusPath, type MissingImage } from './codecs/segment-status.ts';
import type { MissingImagePolicy } from './config.ts';
import type { RunInfo } from './finalize.ts';
import type { ImageJob, ItemImages, ItemOutcome } from './item-image.ts';
import { positionFields, type Position } from './sources/source.ts';

/** What the segment file and the status need of an item (no image bytes). */
export interface PendingItem {
  k: number;
  source: string;
  pos: Position;
  itemId: string;
  title: string;
  /** The reference shown in the status when the image fails. */
  ref: string;
  pv: string;
  category: string;
  extra?: ItemExtra;
}

/** Shared by every job of a run. */
export interface SegmentRunContext {
  workDir: string;
  /** Scratch directory of this run (the streamed image-missing lists live there). */
  tempDir: string;
  /** Segments get an `item_extra<seg>.jsonl` sidecar. */
  withExtra: boolean;
  missingImage: MissingImagePolicy;
  retryFailed: boolean;
  images: ItemImages;
  /** Images in flight (`--concurrency`). */
  slots: Slots;
  /** Items taken but whose row is not written yet: in flight, or done and waiting for an earlier one. */
  rows: Slots;
  run: RunInfo;
  progress: Progress;
}

/** A counting semaphore: the parse pass waits in {@link Slots.acquire} while `n` items are in flight. */
export class Slots {
  private free: number;
  private readonly waiting: (() => void)[] = [];

  constructor(n: number) {
    this.free = n;
  }

  async acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((r) => this.waiting.push(r));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}

/** The files a processed segment writes, open until the segment is full. */
interface Writers {
  rows: AtomicWriter;
  extra?: AtomicWriter;
  /** The image-missing entries, in item order, until the status file is written. */
  missing: AtomicWriter;
}

export class SegmentJob {
  private readonly counts = { items: 0, kept: 0, imagesOk: 0, imageBytes: 0, missing: 0 };
  /** Rows are written in `k` order along this chain. */
  private tail: Promise<void> = Promise.resolve();

  private constructor(
    readonly seg: number,
    readonly split: Split,
    private readonly ctx: SegmentRunContext,
    /** Items and split of a complete earlier run, when the segment is skipped. */
    private readonly previous: { items: number; split: Split } | undefined,
    private readonly writers: Writers | undefined,
  ) {}

  /** Opens segment `seg`: skipped when complete (and not reopened by --retry-failed). */
  static async open(seg: number, split: Split, ctx: SegmentRunContext): Promise<SegmentJob> {
    const prev = await readSegmentStatusHead(ctx.workDir, seg);
    if (prev !== undefined && !(ctx.retryFailed && prev.hasMissing)) {
      return new SegmentJob(seg, split, ctx, { items: prev.head.items, split: prev.head.split }, undefined);
    }
    const writers: Writers = {
      rows: await AtomicWriter.create(join(ctx.workDir, segmentFileName(seg))),
      ...(ctx.withExtra ? { extra: await AtomicWriter.create(join(ctx.workDir, itemExtraFileName(seg))) } : {}),
      missing: await AtomicWriter.create(join(ctx.tempDir, `missing-${seg}.part`)),
    };
    return new SegmentJob(seg, split, ctx, undefined, writers);
  }

  /** Takes the next item (in `k` order) and, unless the segment is skipped, starts its image. */
  async add(item: PendingItem, image: ImageJob): Promise<void> {
    if (!this.writers) {
      this.ctx.progress.increment();
      return;
    }
    await this.ctx.rows.acquire();
    await this.ctx.slots.acquire();
    this.counts.items++;
    const outcome = this.ctx.images.store(image).finally(() => {
      this.ctx.slots.release();
      this.ctx.progress.increment();
    });
    this.tail = this.tail.then(async () => {
      await this.writeRow(item, await outcome);
      this.ctx.rows.release();
    });
    // The chain is awaited in finish(); until then a failure must not count as unhandled.
    this.tail.catch(() => undefined);
  }

  /** Waits for the last rows, commits the files and writes the status; `entry` is the closed segment. */
  async finish(entry: SegmentEntry): Promise<void> {
    const { run, workDir } = this.ctx;
    if (!this.writers) {
      if (this.previous!.items !== entry.items || this.previous!.split !== entry.split) {
        throw new IoError(
          segmentStatusPath(workDir, this.seg),
          `says ${this.previous!.items} ${this.previous!.split} items, the input now gives ${entry.items} ${entry.split}: the input changed since this segment was written (remove the work dir, or this file to redo the segment)`,
        );
      }
      run.segmentsSkipped++;
      return;
    }
    const { rows, extra, missing } = this.writers;
    const status = await AtomicWriter.create(segmentStatusPath(workDir, this.seg));
    const all = [rows, ...(extra ? [extra] : []), missing, status];
    try {
      await this.tail;
      await rows.commit();
      await extra?.commit();
      await missing.commit();
      const { items, kept, imagesOk, imageBytes } = this.counts;
      const parts = encodeSegmentStatusParts({ version: 1, seg: this.seg, split: this.split, items, kept, imagesOk, imageBytes }, this.counts.missing > 0);
      await status.write(parts.head);
      for await (const chunk of createReadStream(missing.target)) await status.write(chunk as Buffer);
      await status.write(parts.end);
      await status.commit();
    } catch (e) {
      for (const w of all) await w.abort();
      throw e instanceof IoError ? e : new IoError(rows.target, e);
    } finally {
      await rm(missing.target, { force: true });
    }
    run.segmentsProcessed++;
  }

  private async writeRow(it: PendingItem, o: ItemOutcome): Promise<void> {
    const { rows, extra, missing } = this.writers!;
    const { run } = this.ctx;
    const imageId = imageIdFor(it.k, this.seg);
    if (o.ok) {
      this.counts.imagesOk++;
      this.counts.imageBytes += o.bytes;
      if (o.fetched) run.imagesFetched++;
      else run.imagesReused++;
    } else {
      run.imagesFailed++;
      const dropped = this.ctx.missingImage === 'drop';
      const m: MissingImage = { imageId, itemId: it.itemId, source: it.source, ...positionFields(it.pos), ref: it.ref, reason: o.reason, detail: o.detail, dropped };
      await missing.write(encodeMissingEntry(m, this.counts.missing++ === 0));
      if (dropped) return;
    }
    this.counts.kept++;
    await rows.write(encodeSegmentRow({ imageId, title: it.title, pic: o.ok ? `${imageId}.jpg` : '', pv: it.pv, category: it.category, itemId: it.itemId }) + '\n');
    if (extra) await extra.write(encodeItemExtra(imageId, it.extra ?? {}) + '\n');
  }
}

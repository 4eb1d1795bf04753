/**
 * @file The work on one segment this shard owns. Items arrive as the parse pass places them and
 * their images start at once (at most `concurrency` in flight over all segments: the parse pass
 * waits for a slot); when the segment is full the job waits for its images and writes the
 * segment file, its extra-field sidecar, then its status file, the completion marker.
 *
 * A segment whose marker exists is skipped (its items cost no work) unless `--retry-failed` asks
 * to reopen a segment with image-missing items; a reopened segment reuses every stored image.
 */
import { join } from 'node:path';
import { AtomicWriter, IoError, type Progress } from '@k3m-kit/core';
import { encodeItemExtra, type ItemExtra } from './codecs/item-extra.ts';
import { encodeSegmentRow, imageIdFor, type SegmentEntry, type Split } from './codecs/segment.ts';
import { readSegmentStatus, segmentStatusPath, writeSegmentStatus, type MissingImage, type SegmentStatus } from './codecs/segment-status.ts';
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
  missingImage: MissingImagePolicy;
  retryFailed: boolean;
  images: ItemImages;
  slots: Slots;
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

export class SegmentJob {
  private readonly items: PendingItem[] = [];
  private readonly outcomes: Promise<ItemOutcome>[] = [];

  private constructor(
    readonly seg: number,
    readonly split: Split,
    private readonly ctx: SegmentRunContext,
    /** The status of a complete earlier run, when the segment is skipped. */
    private readonly previous: SegmentStatus | undefined,
  ) {}

  /** Opens segment `seg`: skipped when complete (and not reopened by --retry-failed). */
  static async open(seg: number, split: Split, ctx: SegmentRunContext): Promise<SegmentJob> {
    const prev = await readSegmentStatus(ctx.workDir, seg);
    const skip = prev !== undefined && !(ctx.retryFailed && prev.missing.length > 0);
    return new SegmentJob(seg, split, ctx, skip ? prev : undefined);
  }

  /** Takes the next item (in `k` order) and, unless the segment is skipped, starts its image. */
  async add(item: PendingItem, image: ImageJob): Promise<void> {
    if (this.previous) {
      this.ctx.progress.increment();
      return;
    }
    await this.ctx.slots.acquire();
    this.items.push(item);
    this.outcomes.push(
      this.ctx.images.store(image).finally(() => {
        this.ctx.slots.release();
        this.ctx.progress.increment();
      }),
    );
  }

  /** Waits for the images and writes the segment file, sidecar and status; `entry` is the closed segment. */
  async finish(entry: SegmentEntry): Promise<SegmentStatus> {
    const { run, workDir } = this.ctx;
    if (this.previous) {
      if (this.previous.items !== entry.items || this.previous.split !== entry.split) {
        throw new IoError(
          segmentStatusPath(workDir, this.seg),
          `says ${this.previous.items} ${this.previous.split} items, the input now gives ${entry.items} ${entry.split}: the input changed since this segment was written (remove the work dir, or this file to redo the segment)`,
        );
      }
      run.segmentsSkipped++;
      return this.previous;
    }
    const outcomes = await Promise.all(this.outcomes);
    const status: SegmentStatus = { version: 1, seg: this.seg, split: this.split, items: this.items.length, kept: 0, imagesOk: 0, imageBytes: 0, missing: [] };
    const out = await AtomicWriter.create(join(workDir, entry.file));
    const extra = entry.extra === undefined ? undefined : await AtomicWriter.create(join(workDir, entry.extra));
    const writers = extra ? [out, extra] : [out];
    try {
      for (let i = 0; i < this.items.length; i++) {
        const it = this.items[i]!;
        const o = outcomes[i]!;
        const imageId = imageIdFor(it.k, this.seg);
        if (o.ok) {
          status.imagesOk++;
          status.imageBytes += o.bytes;
          if (o.fetched) run.imagesFetched++;
          else run.imagesReused++;
        } else {
          run.imagesFailed++;
          const dropped = this.ctx.missingImage === 'drop';
          const m: MissingImage = { imageId, itemId: it.itemId, source: it.source, ...positionFields(it.pos), ref: it.ref, reason: o.reason, detail: o.detail, dropped };
          status.missing.push(m);
          if (dropped) continue;
        }
        status.kept++;
        await out.write(encodeSegmentRow({ imageId, title: it.title, pic: o.ok ? `${imageId}.jpg` : '', pv: it.pv, category: it.category, itemId: it.itemId }) + '\n');
        if (extra) await extra.write(encodeItemExtra(imageId, it.extra ?? {}) + '\n');
      }
      for (const w of writers) await w.commit();
    } catch (e) {
      for (const w of writers) await w.abort();
      throw e instanceof IoError ? e : new IoError(out.target, e);
    }
    await writeSegmentStatus(workDir, status);
    run.segmentsProcessed++;
    return status;
  }
}

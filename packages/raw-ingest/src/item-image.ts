/**
 * @file One item's image, from reference to stored file: reuse the stored `image/<image_id>.jpg`
 * when a resumed run finds it, else take the bytes (fetched from each reference in turn, or handed
 * over from an archive), verify and resize them with sharp, and store the JPEG by rename.
 * The outcome is a value: ok with the stored size, or the reason the item stays image-missing.
 */
import { existsSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import pLimit, { type LimitFunction } from 'p-limit';
import { tempPathFor } from '@k3m-kit/core';
import { ImageSource, resolveImageRef, type FetchResult } from './image-source.ts';
import { storedImageSize, verifyImage, type ImageOptions } from './image-verify.ts';
import type { InlineImage } from './sources/source.ts';

export type ItemOutcome = { ok: true; bytes: number; fetched: boolean } | { ok: false; reason: string; detail: string };

/** What one item needs for its image. */
export interface ImageJob {
  /** `image/<image_id>.jpg` */
  target: string;
  /** References tried in order until one gives a valid image. */
  refs: readonly string[];
  /** Directory relative references resolve against. */
  baseDir: string;
  /** Bytes (or a failure) that come with the item instead of from `refs`. */
  image?: InlineImage;
}

/** Fetches, verifies and stores item images; one per run. */
export class ItemImages {
  private readonly decodeLimit: LimitFunction;

  constructor(
    private readonly source: ImageSource,
    private readonly opts: ImageOptions,
    decodeConcurrency: number,
  ) {
    this.decodeLimit = pLimit(decodeConcurrency);
  }

  /** Stores the image of one item, or says why it cannot. */
  async store(job: ImageJob): Promise<ItemOutcome> {
    const stored = existsSync(job.target) ? await this.decodeLimit(() => storedImageSize(job.target)) : undefined;
    if (stored !== undefined) return { ok: true, bytes: stored, fetched: false };
    if (job.image) return job.image.ok ? this.verifyAndWrite(job.image.body, job.target) : job.image;
    const failures: { ref: string; reason: string; detail: string }[] = [];
    for (const ref of job.refs) {
      const fetched = await this.fetch(ref, job.baseDir);
      const outcome = fetched.ok ? await this.verifyAndWrite(fetched.body, job.target) : fetched;
      if (outcome.ok) return outcome;
      failures.push({ ref, ...outcome });
    }
    const last = failures[failures.length - 1];
    if (!last) return { ok: false, reason: 'no-image-ref', detail: 'the item names no image' };
    // One reference: its own detail, as ever. Several: every attempt, the last one's reason.
    const detail = failures.length === 1 ? last.detail : failures.map((f) => `${f.ref}: ${f.reason}: ${f.detail}`).join('; ');
    return { ok: false, reason: last.reason, detail };
  }

  close(): Promise<void> {
    return this.source.close();
  }

  private async fetch(ref: string, baseDir: string): Promise<FetchResult> {
    let url: URL;
    try {
      url = resolveImageRef(ref, baseDir);
    } catch (e) {
      return { ok: false, reason: 'bad-url', detail: (e as Error).message };
    }
    return this.source.fetch(url);
  }

  private async verifyAndWrite(body: Buffer, target: string): Promise<ItemOutcome> {
    const verified = await this.decodeLimit(() => verifyImage(body, this.opts));
    if (!verified.ok) return verified;
    await writeImage(target, verified.jpeg);
    return { ok: true, bytes: verified.jpeg.length, fetched: true };
  }
}

/**
 * Stores an image under its final name by rename, so a reader or a resumed run never sees a
 * partial file. No fsync per image: a process kill cannot tear a renamed file, and a power loss
 * is what the resume check (a readable JPEG header) is for.
 */
async function writeImage(target: string, data: Uint8Array): Promise<void> {
  const tmp = tempPathFor(target);
  await writeFile(tmp, data);
  await rename(tmp, target);
}

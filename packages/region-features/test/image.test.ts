/**
 * Decoding failures read by sharp under concurrency: libvips keeps one error buffer for all
 * threads, so its text for one bad image can be another's. The reject detail must be the same
 * whichever images fail beside it (the flaky "1 worker and 3 workers" extract test of 2026-11-30).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { CORRUPT_IMAGE_DETAIL } from '@k3m-kit/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeImage, ImageDecodeError } from '../src/image.ts';

let dir: string;
const files: Record<string, string> = {};
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rf-image-'));
  const jpeg = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#f00' } }).jpeg().toBuffer();
  const png = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#0f0' } }).png().toBuffer();
  const bytes = {
    truncated: jpeg.subarray(0, jpeg.length >> 1),
    badPng: Buffer.concat([png.subarray(0, 40), Buffer.alloc(40, 7)]),
    text: Buffer.from('not an image at all'),
  };
  for (const [k, b] of Object.entries(bytes)) await writeFile((files[k] = join(dir, `${k}.jpg`)), b);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const failure = async (path: string) => {
  try {
    await decodeImage(path, 64, 128);
  } catch (e) {
    if (e instanceof ImageDecodeError) return `${e.reason}: ${e.message}`;
    throw e;
  }
  throw new Error(`${path} decoded`);
};

describe('decodeImage failures', () => {
  it("give the same reason and detail whichever images fail at the same time (libvips' shared error text is not used)", async () => {
    const seen: Record<string, Set<string>> = {};
    for (let round = 0; round < 60; round++) {
      const got = await Promise.all(Object.entries(files).map(async ([k, p]) => [k, await failure(p)] as const));
      for (const [k, f] of got) (seen[k] ??= new Set()).add(f);
    }
    expect(Object.fromEntries(Object.entries(seen).map(([k, v]) => [k, [...v]]))).toEqual({
      truncated: [`decode-failed: ${CORRUPT_IMAGE_DETAIL}`],
      badPng: [`decode-failed: ${CORRUPT_IMAGE_DETAIL}`],
      text: ['decode-failed: Input buffer contains unsupported image format'],
    });
  });
});

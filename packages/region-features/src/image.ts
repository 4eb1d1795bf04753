/**
 * @file Image decoding for the detector, the only module that touches sharp. Decoding and
 * resizing run on libuv's thread pool, so issuing the next images while the model computes
 * overlaps the two. Resizing follows detectron2's ResizeShortestEdge sizes; the pixels come from
 * sharp's linear kernel (detectron2 uses PIL bilinear: values differ slightly, see README).
 */
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { imageFailure } from '@k3m-kit/core';
import { resizedSize } from './model/detector.ts';

export interface DecodedImage {
  /** RGB, HWC, uint8, `h * w * 3` bytes. */
  rgb: Uint8Array;
  h: number;
  w: number;
  /** Size of the image as stored (after EXIF orientation, as OpenCV reads it). */
  rawH: number;
  rawW: number;
}

/** Why an image cannot go through the detector: `decode-failed`, or `unusable-size` (decodes, but resizes to nothing). */
export class ImageDecodeError extends Error {
  override name = 'ImageDecodeError';
  constructor(
    message: string,
    readonly reason: 'decode-failed' | 'unusable-size' = 'decode-failed',
  ) {
    super(message);
  }
}

/** A failure this module found itself (not sharp's): its message is kept as the reject detail. */
class OwnCheck extends Error {}

/** Reads, orients, converts to sRGB and resizes one image; undecodable files throw {@link ImageDecodeError}. */
export async function decodeImage(path: string, minSize: number, maxSize: number): Promise<DecodedImage> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (e) {
    throw new ImageDecodeError(`cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let unusable: string | undefined;
  try {
    const meta = await sharp(buf, { failOn: 'error' }).metadata();
    if (!meta.width || !meta.height) throw new OwnCheck('no dimensions');
    const swap = (meta.orientation ?? 1) >= 5;
    const rawW = swap ? meta.height : meta.width;
    const rawH = swap ? meta.width : meta.height;
    const size = resizedSize(rawH, rawW, minSize, maxSize);
    if (size.w < 1 || size.h < 1) unusable = `${rawW}x${rawH} resizes to ${size.w}x${size.h} at ${minSize}/${maxSize}: too thin for the detector`;
    if (unusable) throw new OwnCheck(unusable);
    const { data, info } = await sharp(buf, { failOn: 'error' })
      .rotate()
      .removeAlpha()
      .toColourspace('srgb')
      .resize(size.w, size.h, { fit: 'fill', kernel: 'linear' })
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new OwnCheck(`${info.channels} channels after conversion`);
    return { rgb: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), h: info.height, w: info.width, rawH, rawW };
  } catch (e) {
    if (unusable) throw new ImageDecodeError(unusable, 'unusable-size');
    // Our own messages are kept; sharp's are read without libvips' shared error text (core).
    throw new ImageDecodeError(e instanceof OwnCheck ? e.message : imageFailure((e as Error).message).detail);
  }
}

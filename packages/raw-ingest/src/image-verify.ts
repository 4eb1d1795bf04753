/**
 * @file The only module that touches sharp on the download path: decodes every fetched body in
 * full before it counts, optionally resizes, and returns the JPEG to store. A failure is a value
 * with a reason (`not-an-image`, `corrupt-image`, `too-many-pixels`).
 *
 * Resize follows detectron2's `ResizeShortestEdge` as the region-feature stage uses it: scale so
 * the shorter side is `minSide`, unless that makes the longer side exceed `maxSide`; never enlarge.
 */
import { stat } from 'node:fs/promises';
import sharp from 'sharp';
import { imageFailure } from '@k3m-kit/core';

// One libvips thread per image: parallelism comes from decoding several images at once
// (--decode-concurrency, on libuv's pool), which scales across cores without the per-image
// thread hand-offs. sharp picks 1 itself only on glibc without jemalloc; elsewhere it would take
// a thread per core for every image in flight.
sharp.concurrency(1);

export interface ImageOptions {
  /** Images with more pixels are rejected before decoding (sharp `limitInputPixels`). */
  maxPixels: number;
  /** Target shorter side; undefined = no shorter-side target. */
  minSide?: number;
  /** Cap on the longer side; undefined = no cap. */
  maxSide?: number;
  /** JPEG quality when an image has to be re-encoded. */
  quality: number;
}

export type VerifyResult = { ok: true; jpeg: Buffer; width: number; height: number } | { ok: false; reason: string; detail: string };

/** Truncated data is an error; libjpeg's other warnings (extra bytes, odd markers) are not. */
const FAIL_ON = 'truncated' as const;

/**
 * The output size for a `width`x`height` image, or undefined when it stays as it is.
 * @example targetSize(800, 1200, { minSide: 600, maxSide: 1000 }) // { width: 600, height: 900 }
 */
export function targetSize(width: number, height: number, o: Pick<ImageOptions, 'minSide' | 'maxSide'>) {
  let scale = 1;
  if (o.minSide !== undefined) scale = Math.min(scale, o.minSide / Math.min(width, height));
  if (o.maxSide !== undefined) scale = Math.min(scale, o.maxSide / Math.max(width, height));
  if (scale >= 1) return undefined;
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

/**
 * Decodes `body` completely and returns the bytes to store as `<image_id>.jpg`: the original
 * bytes when they already are an upright JPEG of the right size (nothing is lost to re-encoding),
 * else an upright re-encoded JPEG.
 */
export async function verifyImage(body: Buffer, o: ImageOptions): Promise<VerifyResult> {
  try {
    const img = sharp(body, { failOn: FAIL_ON, limitInputPixels: o.maxPixels });
    if (o.minSide !== undefined && o.maxSide === undefined) {
      // The common download setting needs no header pass: 'outside' + no enlargement is the
      // shorter-side rule, and limitInputPixels still guards the decode.
      const out = img.rotate().resize(o.minSide, o.minSide, { fit: 'outside', withoutEnlargement: true }).jpeg({ quality: o.quality });
      const { data, info } = await out.toBuffer({ resolveWithObject: true });
      return { ok: true, jpeg: data, width: info.width, height: info.height };
    }
    const meta = await img.metadata();
    const { width, height } = meta.autoOrient;
    if (width * height > o.maxPixels) {
      return { ok: false, reason: 'too-many-pixels', detail: `${width}x${height} > --max-pixels ${o.maxPixels}` };
    }
    const size = targetSize(width, height, o);
    const upright = (meta.orientation ?? 1) === 1;
    if (meta.format === 'jpeg' && upright && !size) {
      // A full decode is what catches truncated or corrupt entropy data; the pixels are discarded.
      await img.raw().toBuffer();
      return { ok: true, jpeg: body, width, height };
    }
    let pipeline = img.rotate();
    if (size) pipeline = pipeline.resize(size.width, size.height, { fit: 'fill' });
    const { data, info } = await pipeline.jpeg({ quality: o.quality }).toBuffer({ resolveWithObject: true });
    return { ok: true, jpeg: data, width: info.width, height: info.height };
  } catch (e) {
    const f = imageFailure((e as Error).message);
    return { ok: false, reason: f.kind === 'corrupt' ? 'corrupt-image' : f.kind, detail: f.detail };
  }
}

/**
 * Whether a stored image can be reused on resume: non-empty and a readable JPEG header.
 * Stored images are only ever renamed into place whole, so a header check is enough.
 */
export async function isStoredImageValid(path: string): Promise<boolean> {
  return (await storedImageSize(path)) !== undefined;
}

/** The stored image's size in bytes when it exists and has a readable JPEG header. */
export async function storedImageSize(path: string): Promise<number | undefined> {
  const st = await stat(path).catch(() => undefined);
  if (!st?.isFile() || st.size === 0) return undefined;
  try {
    const meta = await sharp(path).metadata();
    return meta.format === 'jpeg' ? st.size : undefined;
  } catch {
    return undefined;
  }
}


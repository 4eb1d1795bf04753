/**
 * @file What a sharp (libvips) failure means, read from its message without trusting libvips'
 * text. libvips keeps one error buffer for all threads: with decodes in parallel, what follows
 * sharp's own phrase can be another image's error, several images' errors, or nothing (measured:
 * a bad PNG reported "VipsJpeg: premature end of JPEG image" of a JPEG decoded beside it). Reject
 * logs must not depend on which images failed at the same time, so a detail is sharp's own phrase
 * or, for corrupt data, one fixed sentence.
 */

export type ImageFailureKind = 'not-an-image' | 'too-many-pixels' | 'corrupt';

export const CORRUPT_IMAGE_DETAIL = 'the image data is truncated or corrupt (a full decode failed)';

/**
 * @example imageFailure('Input buffer contains unsupported image format') // { kind: 'not-an-image', detail: 'Input buffer contains unsupported image format' }
 * @example imageFailure('Input buffer has corrupt header: VipsJpeg: premature end of JPEG image').kind // 'corrupt'
 */
export function imageFailure(message: string): { kind: ImageFailureKind; detail: string } {
  // sharp's phrase ends where libvips' buffer begins (after a colon or a line break)
  const own = message.split(/[:\n]/)[0]!.trim();
  if (/unsupported image format|Input buffer is empty|bad seek/i.test(own)) return { kind: 'not-an-image', detail: own };
  if (/pixel limit/i.test(own)) return { kind: 'too-many-pixels', detail: own };
  return { kind: 'corrupt', detail: CORRUPT_IMAGE_DETAIL };
}

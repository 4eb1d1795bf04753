import { describe, expect, it } from 'vitest';
import { CORRUPT_IMAGE_DETAIL, imageFailure } from '../src/image-errors.ts';

describe('imageFailure', () => {
  it("keeps sharp's own phrase and drops libvips' shared buffer text", () => {
    expect(imageFailure('Input buffer contains unsupported image format')).toEqual({ kind: 'not-an-image', detail: 'Input buffer contains unsupported image format' });
    expect(imageFailure('Input buffer is empty')).toEqual({ kind: 'not-an-image', detail: 'Input buffer is empty' });
    expect(imageFailure('Input image exceeds pixel limit')).toEqual({ kind: 'too-many-pixels', detail: 'Input image exceeds pixel limit' });
    // the same bad PNG, three messages measured under concurrent decodes: one result
    for (const m of [
      'Input buffer has corrupt header:',
      'Input buffer has corrupt header: VipsJpeg: premature end of JPEG image\nVipsJpeg: Bogus marker length',
      'Input buffer has corrupt header: VipsForeignLoad: buffer is not in a known format',
    ]) {
      expect(imageFailure(m)).toEqual({ kind: 'corrupt', detail: CORRUPT_IMAGE_DETAIL });
    }
    // another image's "unsupported format" text after a corrupt header is not this image's phrase
    expect(imageFailure('Input buffer has corrupt header: Input buffer contains unsupported image format').kind).toBe('corrupt');
  });
});

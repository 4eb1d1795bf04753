import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { verifyImage } from '../src/image-verify.ts';
import { makeJpeg } from '../src/testing.ts';

const MODES = [{}, { minSide: 32 }, { minSide: 32, maxSide: 40 }, { maxSide: 40 }];

describe('verifyImage', () => {
  it.each(MODES)('rejects a truncated JPEG, text and images over the pixel limit (%o)', async (mode) => {
    const good = await makeJpeg(1, 96, 64);
    const o = { maxPixels: 10_000, quality: 90, ...mode };
    expect(await verifyImage(good.subarray(0, Math.floor(good.length * 0.6)), o)).toMatchObject({ ok: false, reason: 'corrupt-image' });
    expect(await verifyImage(Buffer.from('<html>'), o)).toMatchObject({ ok: false, reason: 'not-an-image' });
    expect(await verifyImage(await makeJpeg(2, 200, 200), o)).toMatchObject({ ok: false, reason: 'too-many-pixels' });
    const r = await verifyImage(good, o);
    expect(r.ok).toBe(true);
    if (r.ok) expect((await sharp(r.jpeg).metadata()).format).toBe('jpeg');
  });

  it('stores an upright JPEG that needs no resize as fetched, and resizes by the shorter side', async () => {
    const good = await makeJpeg(1, 96, 64);
    const same = await verifyImage(good, { maxPixels: 1e6, quality: 90 });
    expect(same.ok && same.jpeg.equals(good)).toBe(true);
    expect(await verifyImage(good, { maxPixels: 1e6, quality: 90, minSide: 32 })).toMatchObject({ ok: true, width: 48, height: 32 });
    expect(await verifyImage(good, { maxPixels: 1e6, quality: 90, minSide: 32, maxSide: 40 })).toMatchObject({ ok: true, width: 40, height: 27 });
    const png = await sharp(good).png().toBuffer();
    const fromPng = await verifyImage(png, { maxPixels: 1e6, quality: 90 });
    expect(fromPng.ok && (await sharp(fromPng.jpeg).metadata()).format).toBe('jpeg');
  });
});

/**
 * @file Product pictures that agree with the knowledge: the item's shape, centred and covering
 * the image centre, painted in its 颜色 over a contrasting background (gradient, optional
 * stripes, small distractor blobs near the corners, pixel noise), encoded as JPEG by sharp.
 * A product (Product1M sample) may carry an accent band in a second colour, and a scene shows
 * several products side by side.
 * Pixels are painted in plain JS from a seeded stream, so the bytes depend only on the seed.
 */
import sharp from 'sharp';
import { COLOURS, COLOUR_NAMES, type ColourName, type Rgb, type Shape } from './catalogue.ts';
import type { Rng } from '@k3m-kit/core';

/** Smallest and largest side in pixels: small, so downstream detection stays fast. */
export const MIN_SIDE = 160;
export const MAX_SIDE = 320;
/** Fraction of each side, around the centre, that the shape is guaranteed to dominate. */
export const CENTRE_FRACTION = 0.2;

export interface RawImage {
  width: number;
  height: number;
  /** RGB, row-major, 3 bytes per pixel. */
  data: Uint8Array | Uint8ClampedArray;
}

/**
 * Muted background tones in three families (light, mid, dark). A gradient runs between two
 * tones of one family, so no pixel of it passes near the object's colour on the way.
 */
const BACKGROUNDS: readonly (readonly Rgb[])[] = [
  [[238, 236, 230], [228, 234, 242], [244, 238, 226], [226, 232, 226], [236, 230, 236]],
  [[176, 180, 186], [190, 176, 160], [168, 182, 170]],
  [[52, 56, 64], [70, 60, 54], [46, 60, 58]],
];
const MIN_CONTRAST = 110;

type Inside = (u: number, v: number) => boolean;

function polygon(points: readonly (readonly [number, number])[]): Inside {
  const us = Float64Array.from(points, (q) => q[0]);
  const vs = Float64Array.from(points, (q) => q[1]);
  return (u, v) => {
    let inside = false;
    for (let i = 0, j = us.length - 1; i < us.length; j = i++) {
      if (vs[i]! > v !== vs[j]! > v && u < ((us[j]! - us[i]!) * (v - vs[i]!)) / (vs[j]! - vs[i]!) + us[i]!) inside = !inside;
    }
    return inside;
  };
}

function roundedRect(hw: number, hh: number, r: number): Inside {
  return (u, v) => {
    const au = Math.abs(u);
    const av = Math.abs(v);
    if (au > hw || av > hh) return false;
    const du = au - (hw - r);
    const dv = av - (hh - r);
    return du <= 0 || dv <= 0 || du * du + dv * dv <= r * r;
  };
}

const box = (hw: number, hh: number, v0 = -hh, v1 = hh): Inside => (u, v) => Math.abs(u) <= hw && v >= v0 && v <= v1;
const union = (a: Inside, b: Inside, c?: Inside): Inside => (u, v) => a(u, v) || b(u, v) || (c !== undefined && c(u, v));

/** Shape membership in coordinates centred on the object, unit = the object's half-size, v down. */
const SHAPE_TESTS: Readonly<Record<Shape, Inside>> = Object.freeze({
  circle: (u, v) => u * u + v * v <= 0.9025,
  square: box(0.85, 0.85),
  'wide-rect': box(0.95, 0.6),
  heart: (u, v) => {
    const x = u * 1.2;
    const y = -v * 1.2 + 0.25;
    const a = x * x + y * y - 1;
    return a * a * a - x * x * y * y * y <= 0;
  },
  dress: polygon([[-0.42, -0.95], [0.42, -0.95], [0.45, -0.35], [0.9, 0.95], [-0.9, 0.95], [-0.45, -0.35]]),
  tshirt: polygon([
    [-0.35, -0.9], [0.35, -0.9], [0.95, -0.5], [0.75, -0.15], [0.52, -0.35], [0.52, 0.95],
    [-0.52, 0.95], [-0.52, -0.35], [-0.75, -0.15], [-0.95, -0.5],
  ]),
  shoe: union(
    (u, v) => (u / 0.95) ** 2 + ((v - 0.25) / 0.5) ** 2 <= 1,
    polygon([[-0.8, 0.25], [-0.75, -0.7], [-0.05, -0.7], [0.75, 0.25]]),
  ),
  backpack: roundedRect(0.72, 0.9, 0.3),
  bottle: union(box(0.42, 0.95, -0.72, 0.95), box(0.34, 0.95, -0.95, -0.72)),
  lamp: union(
    (u, v) => v >= -0.9 && v <= 0.45 && Math.abs(u) <= 0.4 + (0.5 * (v + 0.9)) / 1.35,
    box(0.06, 0.95, 0.45, 0.8),
    box(0.45, 0.95, 0.8, 0.95),
  ),
  'phone-case': roundedRect(0.55, 0.95, 0.18),
  bowl: union((u, v) => v >= -0.4 && u * u + ((v + 0.4) / 1.25) ** 2 <= 0.9025, box(0.3, 0.92, 0.7, 0.92)),
  umbrella: union((u, v) => v <= 0.3 && u * u + ((v - 0.3) / 1.15) ** 2 <= 0.9025, box(0.04, 0.85, 0.3, 0.85)),
});

const dist = (a: Rgb, b: Rgb) => Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);

const PALETTE = COLOUR_NAMES.map((name) => [name, ...COLOURS[name]] as const);

/** The palette colour nearest to an RGB triple (how tests read a picture's colour back). */
export function nearestColour(rgb: Rgb): ColourName {
  let best = PALETTE[0]![0];
  let bestD = Infinity;
  for (const [name, r, g, b] of PALETTE) {
    const d = (rgb[0] - r) ** 2 + (rgb[1] - g) ** 2 + (rgb[2] - b) ** 2;
    if (d < bestD) [best, bestD] = [name, d];
  }
  return best;
}

/** Width of the accent band in the object's unit coordinates, and where it sits (v down). */
const ACCENT_BAND = Object.freeze({ centre: -0.05, half: 0.2 });

interface Placed {
  inside: Inside;
  cx: number;
  cy: number;
  half: number;
  rgb: Rgb;
  accent?: Rgb;
}

interface Background {
  bg0: Rgb;
  bg1: Rgb;
  gx: number;
  gy: number;
  stripes: number;
  noise: number;
}

/** Tones, gradient, stripes and noise level; tones contrast with every object colour when a family allows it. */
function drawBackground(rng: Rng, objects: readonly Rgb[]): Background {
  const contrasting = BACKGROUNDS.map((f) => f.filter((t) => objects.every((o) => dist(t, o) >= MIN_CONTRAST))).filter((f) => f.length > 0);
  const tones = rng.pick(contrasting.length > 0 ? contrasting : BACKGROUNDS);
  const bg0 = rng.pick(tones);
  const bg1 = rng.pick(tones);
  const angle = rng.float(0, Math.PI);
  const stripes = rng.chance(0.3) ? rng.intIn(8, 20) : 0;
  const noise = rng.intIn(4, 12);
  return { bg0, bg1, gx: Math.cos(angle), gy: Math.sin(angle), stripes, noise };
}

/**
 * Paints one picture.
 * @param accent a band across the object in a second colour (a product's mark); without it the
 *   picture is exactly what it was before accents existed
 * @example const img = paintImage(Rng.from(1, 'img'), '红色', 'circle')
 */
export function paintImage(rng: Rng, colour: ColourName, shape: Shape, accent?: ColourName): RawImage {
  const width = rng.intIn(MIN_SIDE, MAX_SIDE);
  // Aspect kept within 3:4..4:3, so the centred object fills the centre on both axes.
  const height = Math.max(MIN_SIDE, Math.min(MAX_SIDE, Math.round(width * rng.float(0.75, 1.333))));
  const bg = drawBackground(rng, [COLOURS[colour]]);
  const side = Math.min(width, height);
  const half = side * rng.float(0.38, 0.46);
  const cx = width / 2 + rng.float(-0.03, 0.03) * width;
  const cy = height / 2 + rng.float(-0.03, 0.03) * height;
  const object: Placed = { inside: SHAPE_TESTS[shape], cx, cy, half, rgb: COLOURS[colour], ...(accent ? { accent: COLOURS[accent] } : {}) };
  return render(rng, width, height, bg, [object], drawBlobs(rng, width, height, side, [colour]));
}

/** One product of a scene: its colour, shape and optional accent band. */
export interface SceneObject {
  colour: ColourName;
  shape: Shape;
  accent?: ColourName;
}

/**
 * Several products side by side in one wider picture (a bundle, a shop's group shot), left to
 * right in the order given, each about as large as the width allows.
 * @example const img = paintScene(Rng.from(1, 'scene'), [{ colour: '红色', shape: 'bottle' }, { colour: '蓝色', shape: 'bowl' }])
 */
export function paintScene(rng: Rng, objects: readonly SceneObject[]): RawImage {
  if (objects.length === 0) throw new RangeError('paintScene: no objects');
  const height = rng.intIn(MIN_SIDE, Math.round((MIN_SIDE + MAX_SIDE) / 2));
  const width = Math.min(MAX_SIDE * 2, Math.round(height * objects.length * rng.float(0.9, 1.1)));
  const bg = drawBackground(rng, objects.map((o) => COLOURS[o.colour]));
  const cell = width / objects.length;
  const placed = objects.map((o, k): Placed => {
    const half = Math.min(cell, height) * rng.float(0.36, 0.42);
    return {
      inside: SHAPE_TESTS[o.shape],
      cx: cell * (k + 0.5) + rng.float(-0.03, 0.03) * cell,
      cy: height / 2 + rng.float(-0.03, 0.03) * height,
      half,
      rgb: COLOURS[o.colour],
      ...(o.accent ? { accent: COLOURS[o.accent] } : {}),
    };
  });
  return render(rng, width, height, bg, placed, []);
}

interface Blob {
  x: number;
  y: number;
  r: number;
  rgb: Rgb;
}

/** Distractors sit in the corner bands, outside the centre the object must dominate. */
function drawBlobs(rng: Rng, width: number, height: number, side: number, avoid: readonly ColourName[]): Blob[] {
  return Array.from({ length: rng.intIn(0, 2) }, () => ({
    x: rng.chance(0.5) ? rng.float(0.04, 0.16) * width : rng.float(0.84, 0.96) * width,
    y: rng.chance(0.5) ? rng.float(0.04, 0.16) * height : rng.float(0.84, 0.96) * height,
    r: side * rng.float(0.04, 0.08),
    rgb: COLOURS[rng.pick(COLOUR_NAMES.filter((c) => !avoid.includes(c)))],
  }));
}

/** The pixels: objects (first one wins), blobs, the background gradient; shading and noise. */
function render(rng: Rng, width: number, height: number, bg: Background, objects: readonly Placed[], blobs: readonly Blob[]): RawImage {
  const { bg0, bg1, gx, gy, stripes, noise } = bg;
  // Clamped: stores round and saturate, so shading and noise never wrap around.
  const data = new Uint8ClampedArray(width * height * 3);
  const diag = Math.abs(gx) * width + Math.abs(gy) * height;
  const [ax, ay] = [Math.abs(gx) / diag, Math.abs(gy) / diag];
  let bits = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 3;
      let r: number, g: number, b: number;
      let shade = 1;
      const hit = objectAt(objects, x, y);
      if (hit) {
        [r, g, b] = hit.rgb;
        shade = 1.05 - 0.05 * (hit.v + 1); // light from above
      } else {
        const blob = blobAt(blobs, x, y);
        if (blob) {
          r = blob[0];
          g = blob[1];
          b = blob[2];
        } else {
          const t = (gx < 0 ? width - x : x) * ax + y * ay;
          r = bg0[0] + (bg1[0] - bg0[0]) * t;
          g = bg0[1] + (bg1[1] - bg0[1]) * t;
          b = bg0[2] + (bg1[2] - bg0[2]) * t;
          if (stripes && Math.floor((x + y) / stripes) % 2 === 0) shade = 0.94;
        }
      }
      // One 32-bit draw gives the noise of four pixels.
      if ((x & 3) === 0) bits = rng.u32();
      const n = (((bits >>> ((x & 3) * 8)) & 255) / 127.5 - 1) * noise;
      data[o] = r * shade + n;
      data[o + 1] = g * shade + n;
      data[o + 2] = b * shade + n;
    }
  }
  return { width, height, data };
}

/** The first object covering pixel (x, y): the colour there (its accent band included) and the pixel's v. */
function objectAt(objects: readonly Placed[], x: number, y: number): { rgb: Rgb; v: number } | undefined {
  for (let i = 0; i < objects.length; i++) {
    const p = objects[i]!;
    const v = (y + 0.5 - p.cy) / p.half;
    if (!p.inside((x + 0.5 - p.cx) / p.half, v)) continue;
    const inBand = p.accent !== undefined && Math.abs(v - ACCENT_BAND.centre) <= ACCENT_BAND.half;
    return { rgb: inBand ? p.accent! : p.rgb, v };
  }
  return undefined;
}

function blobAt(blobs: readonly Blob[], x: number, y: number): Rgb | undefined {
  for (let i = 0; i < blobs.length; i++) {
    const b = blobs[i]!;
    if ((x - b.x) * (x - b.x) + (y - b.y) * (y - b.y) <= b.r * b.r) return b.rgb;
  }
  return undefined;
}

/** JPEG bytes of a painted image (baseline, 4:2:0, deterministic for a given sharp build). */
export function encodeJpeg(img: RawImage, quality: number): Promise<Buffer> {
  return sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
    .jpeg({ quality })
    .toBuffer();
}

/**
 * The colour that covers most of the central {@link CENTRE_FRACTION} of an RGB image, and its
 * share there. Used by tests to check that a picture shows its 颜色.
 */
export function centreColour(img: RawImage): { colour: ColourName; share: number } {
  const counts = new Map<ColourName, number>();
  const x0 = Math.floor((img.width * (1 - CENTRE_FRACTION)) / 2);
  const y0 = Math.floor((img.height * (1 - CENTRE_FRACTION)) / 2);
  const x1 = img.width - x0;
  const y1 = img.height - y0;
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      const o = (y * img.width + x) * 3;
      const c = nearestColour([img.data[o]!, img.data[o + 1]!, img.data[o + 2]!]);
      counts.set(c, (counts.get(c) ?? 0) + 1);
    }
  }
  const total = (x1 - x0) * (y1 - y0);
  const [colour, n] = [...counts.entries()].sort((a, b) => b[1] - a[1])[0]!;
  return { colour, share: n / total };
}

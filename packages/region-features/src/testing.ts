/**
 * @file Test-only loaders: the PyTorch golden fixtures of tools/golden/ (regenerate with
 * `/usr/bin/python3 tools/golden/make_region_golden.py`) and a tiny work directory builder
 * (segments + images drawn with sharp).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { encodeManifest, encodeSegmentRow, segmentFileName, type SegmentRow, type Split } from '@k3m-kit/raw-ingest';
import { readSafetensors, toFloat32, toInt32 } from '@k3m-kit/core';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const GOLDEN_DIR = join(REPO_ROOT, 'tools/golden/region-features');

export interface GoldenImage {
  rgb: Uint8Array;
  h: number;
  w: number;
  rawH: number;
  rawW: number;
  res4: Float32Array;
  res4Shape: number[];
  proposals: Float32Array;
  features: Float32Array;
  probs: Float32Array;
  k3mKeep: Int32Array;
  k3mBoxes: Float32Array;
  adaptiveKeep: Int32Array;
}

export interface RegionGolden {
  pkl: string;
  config: Record<string, unknown>;
  minSize: number;
  maxSize: number;
  images: GoldenImage[];
}

export async function loadRegionGolden(): Promise<RegionGolden> {
  const st = await readSafetensors(join(GOLDEN_DIR, 'golden.safetensors'));
  const meta = st.metadata;
  const infos = JSON.parse(meta.images!) as { rawH: number; rawW: number; h: number; w: number }[];
  const t = (n: string) => {
    const v = st.tensors.get(n);
    if (!v) throw new Error(`golden tensor ${n} missing`);
    return v;
  };
  const images = infos.map((info, i) => ({
    ...info,
    rgb: new Uint8Array(t(`img${i}.rgb`).bytes),
    res4: toFloat32(t(`img${i}.res4`)),
    res4Shape: t(`img${i}.res4`).shape,
    proposals: toFloat32(t(`img${i}.proposals`)),
    features: toFloat32(t(`img${i}.features`)),
    probs: toFloat32(t(`img${i}.probs`)),
    k3mKeep: toInt32(t(`img${i}.k3m_keep`)),
    k3mBoxes: toFloat32(t(`img${i}.k3m_boxes`)),
    adaptiveKeep: toInt32(t(`img${i}.adaptive_keep`)),
  }));
  return {
    pkl: join(GOLDEN_DIR, 'small-c4-random.pkl'),
    config: JSON.parse(meta.config!) as Record<string, unknown>,
    minSize: Number(meta.minSize),
    maxSize: Number(meta.maxSize),
    images,
  };
}

/** Largest |a - b| over max |b| (a relative error that ignores near-zero entries' ratios). */
export function relMaxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let d = 0;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(b[i]!));
  }
  return d / (m || 1);
}

export interface TinyItem {
  /** Image size, or 'missing' (no image), or 'corrupt' (bytes that do not decode). */
  image: { w: number; h: number } | 'missing' | 'corrupt';
}

/**
 * Writes a work dir in raw-ingest's layout: segments.json, id_title_pvs_cls.txt<seg> and
 * image/<id>.jpg drawn with sharp (deterministic colours per item).
 */
export async function makeTinyWorkDir(dir: string, segments: { split: Split; items: TinyItem[] }[]): Promise<void> {
  await mkdir(join(dir, 'image'), { recursive: true });
  const entries = [];
  for (const [seg, s] of segments.entries()) {
    const rows: string[] = [];
    for (const [k, item] of s.items.entries()) {
      const imageId = `${k}_s${seg}`;
      const pic = item.image === 'missing' ? '' : `${imageId}.jpg`;
      if (item.image === 'corrupt') await writeFile(join(dir, 'image', pic), Buffer.from('not a jpeg at all'));
      else if (item.image !== 'missing') {
        const { w, h } = item.image;
        const c = (k * 53 + seg * 97) % 256;
        const base = sharp({ create: { width: w, height: h, channels: 3, background: { r: c, g: 255 - c, b: (c * 3) % 256 } } });
        const stripe = await sharp({ create: { width: Math.max(1, w >> 2), height: h, channels: 3, background: { r: 255, g: 255, b: 255 } } }).png().toBuffer();
        await base.composite([{ input: stripe, left: w >> 1, top: 0 }]).jpeg({ quality: 90 }).toFile(join(dir, 'image', pic));
      }
      const row: SegmentRow = { imageId, title: `item ${k}`, pic, pv: 'color:red', category: 'c', itemId: `i${seg}-${k}` };
      rows.push(encodeSegmentRow(row));
    }
    await writeFile(join(dir, segmentFileName(seg)), rows.join('\n') + '\n');
    entries.push({ seg, split: s.split, file: segmentFileName(seg), items: s.items.length });
  }
  await writeFile(join(dir, 'segments.json'), encodeManifest({ version: 1, segmentSize: 1000, segments: entries }));
}

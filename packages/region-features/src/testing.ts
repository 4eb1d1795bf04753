/**
 * @file Test-only loaders: the PyTorch golden fixtures of tools/golden/ (regenerate with
 * `/usr/bin/python3 tools/golden/make_region_golden.py` and `make_bua_torchvision_golden.py`),
 * generated checkpoints of the real bottom-up-attention layout
 * (tools/checkpoint/make_bua_checkpoint.py) and a tiny work directory builder (segments + images
 * drawn with sharp).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { encodeManifest, encodeSegmentRow, segmentFileName, type SegmentRow, type Split } from '@k3m-kit/raw-ingest';
import { readSafetensors, toFloat32, toInt32 } from '@k3m-kit/core';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const GOLDEN_DIR = join(REPO_ROOT, 'tools/golden/region-features');
export const PYTHON = '/usr/bin/python3';

/**
 * The project's shared reference folder: `$K3M_SHARED`, else `<repo>/../shared` (the main
 * checkout's neighbour), else `/work/shared` (what a worktree elsewhere sees); undefined when
 * none exists.
 */
export function sharedDir(): string | undefined {
  return [process.env.K3M_SHARED, resolve(REPO_ROOT, '../shared'), '/work/shared'].find((d) => d && existsSync(d));
}

/** `keys.tsv` of the real checkpoint (names and shapes), or undefined without the shared folder. */
export function buaKeysPath(): string | undefined {
  const d = sharedDir();
  const p = d && join(d, 'reference/bua-checkpoint/keys.tsv');
  return p && existsSync(p) ? p : undefined;
}

/** Why the real-layout generator cannot run here, or undefined when it can. */
export function buaGeneratorMissing(): string | undefined {
  if (!buaKeysPath()) return 'shared/reference/bua-checkpoint/keys.tsv not found (set K3M_SHARED)';
  const r = spawnSync(PYTHON, ['-c', 'import numpy'], { encoding: 'utf8' });
  return r.status === 0 ? undefined : `${PYTHON} with numpy is not available (apt-get install python3-numpy)`;
}

/** make_bua_checkpoint.py's options (see its docstring). */
export interface BuaCheckpointOptions {
  protocol?: 2 | 3 | 4;
  container?: 'dict' | 'ordered';
  matchingHeuristics?: 'absent' | 'true' | 'false';
  attr?: boolean;
  permuteAnchors?: readonly number[];
  seed?: number;
}

/**
 * Writes a pickle of the real checkpoint's layout with seeded random values (about 255 MB; 380 MB
 * in protocol 2) through tools/checkpoint/make_bua_checkpoint.py.
 */
export function makeBuaCheckpoint(out: string, o: BuaCheckpointOptions = {}): void {
  const keys = buaKeysPath();
  if (!keys) throw new Error('keys.tsv of the real checkpoint not found (set K3M_SHARED)');
  const args = [join(REPO_ROOT, 'tools/checkpoint/make_bua_checkpoint.py'), '--keys', keys, '--out', out];
  args.push('--protocol', String(o.protocol ?? 3), '--container', o.container ?? 'dict', '--matching-heuristics', o.matchingHeuristics ?? 'absent');
  args.push('--seed', String(o.seed ?? 0));
  if (o.attr) args.push('--attr');
  if (o.permuteAnchors) args.push('--permute-anchors', o.permuteAnchors.join(','));
  const r = spawnSync(PYTHON, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`make_bua_checkpoint.py failed: ${r.stderr || r.error?.message}`);
}

/** tools/golden/region-features/bua-torchvision.safetensors (see make_bua_torchvision_golden.py). */
export interface BuaTorchvisionGolden {
  config: Record<string, unknown>;
  generator: { seed: number; container: 'dict' | 'ordered'; attr: boolean };
  poolChannels: number[];
  rgb: Uint8Array;
  h: number;
  w: number;
  res4: Float32Array;
  res4Shape: [number, number, number];
  rpnLogits: Float32Array;
  rpnDeltas: Float32Array;
  proposals: Float32Array;
  pooled: Float32Array;
  pooledSum: Float32Array;
  k3mKeep: Int32Array;
  k3mBoxes: Float32Array;
  adaptiveKeep: Int32Array;
  keptFeatures: Float32Array;
  keptProbs: Float32Array;
  keptAttrProbs: Float32Array;
}

export async function loadBuaTorchvisionGolden(): Promise<BuaTorchvisionGolden> {
  const st = await readSafetensors(join(GOLDEN_DIR, 'bua-torchvision.safetensors'));
  const t = (n: string) => {
    const v = st.tensors.get(n);
    if (!v) throw new Error(`golden tensor ${n} missing`);
    return v;
  };
  const rgb = t('rgb');
  return {
    config: JSON.parse(st.metadata.config!) as Record<string, unknown>,
    generator: JSON.parse(st.metadata.generator!) as BuaTorchvisionGolden['generator'],
    poolChannels: JSON.parse(st.metadata.poolChannels!) as number[],
    rgb: new Uint8Array(rgb.bytes),
    h: rgb.shape[0]!,
    w: rgb.shape[1]!,
    res4: toFloat32(t('res4')),
    res4Shape: t('res4').shape as [number, number, number],
    rpnLogits: toFloat32(t('rpn_logits')),
    rpnDeltas: toFloat32(t('rpn_deltas')),
    proposals: toFloat32(t('proposals')),
    pooled: toFloat32(t('pooled')),
    pooledSum: toFloat32(t('pooled_sum')),
    k3mKeep: toInt32(t('k3m_keep')),
    k3mBoxes: toFloat32(t('k3m_boxes')),
    adaptiveKeep: toInt32(t('adaptive_keep')),
    keptFeatures: toFloat32(t('kept_features')),
    keptProbs: toFloat32(t('kept_probs')),
    keptAttrProbs: toFloat32(t('kept_attr_probs')),
  };
}

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
  /**
   * Image size, or 'missing' (no image), 'corrupt' (bytes that are no image), 'truncated' (a
   * JPEG cut in half) or 'absent' (the row names a file that does not exist).
   */
  image: { w: number; h: number } | 'missing' | 'corrupt' | 'truncated' | 'absent';
}

async function drawJpeg(w: number, h: number, k: number, seg: number): Promise<Buffer> {
  const c = (k * 53 + seg * 97) % 256;
  const base = sharp({ create: { width: w, height: h, channels: 3, background: { r: c, g: 255 - c, b: (c * 3) % 256 } } });
  const stripe = await sharp({ create: { width: Math.max(1, w >> 2), height: h, channels: 3, background: { r: 255, g: 255, b: 255 } } }).png().toBuffer();
  return base.composite([{ input: stripe, left: w >> 1, top: 0 }]).jpeg({ quality: 90 }).toBuffer();
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
      const file = join(dir, 'image', pic);
      if (item.image === 'corrupt') await writeFile(file, Buffer.from('not a jpeg at all'));
      else if (item.image === 'truncated') {
        const full = await drawJpeg(64, 48, k, seg);
        await writeFile(file, full.subarray(0, full.length >> 1));
      } else if (typeof item.image === 'object') await writeFile(file, await drawJpeg(item.image.w, item.image.h, k, seg));
      const row: SegmentRow = { imageId, title: `item ${k}`, pic, pv: 'color:red', category: 'c', itemId: `i${seg}-${k}` };
      rows.push(encodeSegmentRow(row));
    }
    await writeFile(join(dir, segmentFileName(seg)), rows.join('\n') + '\n');
    entries.push({ seg, split: s.split, file: segmentFileName(seg), items: s.items.length });
  }
  await writeFile(join(dir, 'segments.json'), encodeManifest({ version: 1, segmentSize: 1000, segments: entries }));
}

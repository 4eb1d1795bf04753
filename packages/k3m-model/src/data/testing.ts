/**
 * @file Test-only helpers of the data path: in-memory records and the golden fixtures of
 * k3m-golden/ (preprocess.jsonl; the image side of the model batch rebuilt as records plus the
 * recorded region masking choices). Re-exported from the package's `./testing` entry; never
 * imported by production code.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { K3mRecord } from '@k3m-kit/lmdb-writer';
import { readSafetensors, toFloat32, toInt32, type RawTensor } from '@k3m-kit/core';
import type { RegionChoice } from './preprocess.ts';
import { Rng } from '@k3m-kit/core';

/** One line of preprocess.jsonl (k3m-golden/README.md Part A). */
export interface PreprocessGoldenRow {
  row: number;
  item_id: string;
  title: string;
  pv: string;
  input_ids: number[];
  input_mask: number[];
  lm_label_ids: number[];
  input_ids_pv: number[];
  input_mask_pv: number[];
  lm_label_ids_pv: number[];
  index_p: [number, number][];
  index_v: [number, number][];
}

/** The golden folder's files, or a reason to skip when any is absent. */
export function goldenFiles(dir: string, names: readonly string[]): { ok: true } | { ok: false; reason: string } {
  const missing = names.filter((n) => !existsSync(join(dir, n)));
  return missing.length ? { ok: false, reason: `golden fixtures absent in ${dir}: ${missing.join(', ')}` } : { ok: true };
}

export async function readPreprocessGolden(dir: string): Promise<PreprocessGoldenRow[]> {
  const text = await readFile(join(dir, 'preprocess.jsonl'), 'utf8');
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as PreprocessGoldenRow);
}

export interface RecordSpec {
  imageId?: string;
  caption?: string;
  pv?: string;
  numBoxes?: number;
  featureDim?: number;
  numClasses?: number;
  imageW?: number;
  imageH?: number;
  /** Seeds the random features, class probabilities and boxes. */
  seed?: number;
}

/** An in-memory record with random (seeded) region data inside a W x H image. */
export function makeRecord(spec: RecordSpec = {}): K3mRecord {
  const n = spec.numBoxes ?? 5;
  const D = spec.featureDim ?? 2048;
  const C = spec.numClasses ?? 1601;
  const W = spec.imageW ?? 640;
  const H = spec.imageH ?? 480;
  const rng = Rng.from('makeRecord', spec.seed ?? 0, spec.imageId ?? '');
  const features = Float32Array.from({ length: n * D }, () => rng.next());
  const clsProb = new Float32Array(n * C);
  for (let i = 0; i < n; i++) clsProb[i * C + rng.int(C)] = 1;
  const boxes = new Float32Array(n * 4);
  for (let i = 0; i < n; i++) {
    const x1 = rng.int(W / 2);
    const y1 = rng.int(H / 2);
    boxes.set([x1, y1, x1 + 1 + rng.int(W / 2 - 1), y1 + 1 + rng.int(H / 2 - 1)], i * 4);
  }
  return {
    features,
    clsProb,
    boxes,
    numBoxes: n,
    imageH: H,
    imageW: W,
    imageId: spec.imageId ?? 'item',
    caption: spec.caption ?? '',
    pv: spec.pv ?? '',
    category: '',
    featureDim: D,
    numClasses: C,
  };
}

/** The golden model batch's image side as records, with the recorded region masking choices. */
export interface GoldenImageBatch {
  records: K3mRecord[];
  choices: RegionChoice[];
  /** [B, 36] the reference's overlap-expanded mask */
  maskedLabel: Float32Array;
  inputs: Map<string, RawTensor>;
}

/**
 * Rebuilds the records behind inputs.safetensors from image_raw.safetensors: boxes, counts and
 * sizes from there, features from image_feat rows 1..36 (the 9 zeroed rows are zero there and
 * zero after masking again), class probabilities from image_target; selection from
 * image_label == 1, zeroing from region_zeroed.
 */
export async function readGoldenImageBatch(dir: string): Promise<GoldenImageBatch> {
  const raw = (await readSafetensors(join(dir, 'image_raw.safetensors'))).tensors;
  const inputs = (await readSafetensors(join(dir, 'inputs.safetensors'))).tensors;
  const [B, R, D] = inputs.get('image_feat')!.shape as [number, number, number];
  const regions = R - 1;
  const C = inputs.get('image_target')!.shape[2]!;
  const boxes = toFloat32(raw.get('boxes')!);
  const num = toInt32(raw.get('num_boxes')!);
  const w = toInt32(raw.get('image_w')!);
  const h = toInt32(raw.get('image_h')!);
  const zeroed = toInt32(raw.get('region_zeroed')!);
  const feat = toFloat32(inputs.get('image_feat')!);
  const target = toFloat32(inputs.get('image_target')!);
  const label = toInt32(inputs.get('image_label')!);
  const records: K3mRecord[] = [];
  const choices: RegionChoice[] = [];
  for (let b = 0; b < B; b++) {
    const n = num[b]!;
    const f0 = (b * R + 1) * D;
    records.push({
      features: feat.slice(f0, f0 + n * D),
      clsProb: target.slice(b * regions * C, (b * regions + n) * C),
      boxes: boxes.slice(b * regions * 4, (b * regions + n) * 4),
      numBoxes: n,
      imageH: h[b]!,
      imageW: w[b]!,
      imageId: `golden-${b}`,
      caption: '',
      pv: '',
      category: '',
      featureDim: D,
      numClasses: C,
    });
    choices.push({
      selected: Uint8Array.from(label.subarray(b * regions, b * regions + n), (v) => (v === 1 ? 1 : 0)),
      zeroed: Uint8Array.from(zeroed.subarray(b * regions, b * regions + n)),
    });
  }
  return { records, choices, maskedLabel: toFloat32(raw.get('masked_label')!), inputs };
}

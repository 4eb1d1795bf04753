/**
 * @file Detector weights: `convert-weights` (detectron2 pickle to safetensors, names and
 * shapes verified against a preset) and loading for extraction (safetensors or pickle, or the
 * seeded random initialisation when none is given and the preset allows it).
 *
 * Beside the detector's own parameters a checkpoint may carry the RPN's anchor buffer and the
 * attribute head (`faster_rcnn_from_caffe_attr.pkl`); both are kept when present. Names the
 * detector does not know are listed, not fatal; missing or mis-shaped ones are an error naming
 * them and the file.
 */
import { extname } from 'node:path';
import {
  UsageError,
  f32,
  readSafetensors,
  toFloat32,
  writeSafetensors,
  type RawTensor,
} from '@k3m-kit/core';
import { readDetectron2Pickle } from './codecs/detectron2-pickle.ts';
import { isIgnorable, randomParams, verifyParams, type Params, type ParamsFit } from './model/params.ts';
import { PRESETS, type PresetName } from './model/presets.ts';

/** Presets that may run without a checkpoint (on the seeded random initialisation). */
export const RANDOM_INIT_PRESETS: readonly PresetName[] = ['small-c4-2048', 'small-c4'];
export const DEFAULT_SEED = 0;

export interface LoadedWeights {
  params: Params;
  /** For meta.json and reports: the weight file, or `random-init seed <n>`. */
  weights: string;
  /** True when no checkpoint was given. */
  randomInit: boolean;
}

/** The plain-words warning every report carries when weights are random. */
export function randomInitNote(seed: number): string {
  return `no detector weights were given: features come from a seeded random initialisation (seed ${seed}) and carry no visual meaning`;
}

async function readNamed(path: string): Promise<Map<string, { shape: number[]; data: Float32Array }>> {
  if (extname(path) === '.pkl' || extname(path) === '.pickle') return readDetectron2Pickle(path);
  const st = await readSafetensors(path);
  return new Map([...st.tensors].map(([n, t]) => [n, { shape: t.shape, data: toFloat32(t) }]));
}

/**
 * Reads a checkpoint (`.pkl` or `.safetensors`) and verifies it against the preset: the
 * parameters the detector reads (the anchor buffer and attribute head included when present).
 */
export async function readWeights(path: string, preset: PresetName): Promise<Params> {
  const named = await readNamed(path);
  const fit = verifyParams(PRESETS[preset], named, preset, path);
  return new Map(fit.names.map((n) => [n, named.get(n)!.data]));
}

/**
 * Weights for extraction: the checkpoint when given, else random init where allowed. A
 * checkpoint that does not fit is a usage error on `--weights` (exit 2).
 */
export async function loadWeights(preset: PresetName, path: string | undefined, seed = DEFAULT_SEED): Promise<LoadedWeights> {
  if (path) {
    try {
      return { params: await readWeights(path, preset), weights: path, randomInit: false };
    } catch (e) {
      const name = (e as Error).name;
      if (name === 'WeightsMismatchError' || name === 'PickleFormatError' || name === 'SafetensorsError') throw new UsageError(`--weights ${(e as Error).message}`);
      throw e;
    }
  }
  if (!RANDOM_INIT_PRESETS.includes(preset)) {
    throw new UsageError(`--weights: preset ${preset} needs converted weights (region-features convert-weights faster_rcnn_from_caffe.pkl)`);
  }
  return { params: randomParams(PRESETS[preset], seed), weights: `random-init seed ${seed}`, randomInit: true };
}

export interface ConvertResult extends Omit<ParamsFit, 'names'> {
  out: string;
  tensors: number;
  /** Bookkeeping entries dropped (`num_batches_tracked`, `pixel_mean`, `pixel_std`). */
  ignored: string[];
  parameters: number;
}

/**
 * `convert-weights`: pickle in, safetensors out, detectron2 names and PyTorch shapes kept (the
 * anchor buffer and the attribute head too, when the checkpoint has them). Throws
 * {@link WeightsMismatchError} listing missing and mis-shaped names with the file.
 */
export async function convertWeights(pkl: string, out: string, preset: PresetName): Promise<ConvertResult> {
  const named = await readDetectron2Pickle(pkl);
  const fit = verifyParams(PRESETS[preset], named, preset, pkl);
  const tensors = new Map<string, RawTensor>();
  let parameters = 0;
  for (const name of fit.names) {
    const a = named.get(name)!;
    tensors.set(name, f32(a.shape, a.data));
    parameters += a.data.length;
  }
  await writeSafetensors(out, tensors, {
    preset,
    source: pkl,
    format: 'detectron2-names-pytorch-shapes',
    anchors: fit.anchors ? 'checkpoint buffer' : 'generated (none in the checkpoint)',
    attributes: String(fit.attributes),
  });
  const { names, ...rest } = fit;
  return { out, tensors: names.length, ignored: [...named.keys()].filter(isIgnorable), parameters, ...rest };
}

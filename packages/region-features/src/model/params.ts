/**
 * @file The detector's parameters under detectron2's names and PyTorch shapes (convolutions
 * `[out, in, kh, kw]`, linear layers `[out, in]`), the seeded random initialisation, and the
 * check that a weight set is complete. Converted checkpoints keep these names and shapes.
 */
import { Rng } from '@k3m-kit/core';
import type { DetectorConfig } from './presets.ts';

export type ParamShapes = Map<string, number[]>;
export type Params = Map<string, Float32Array>;

const BN = ['weight', 'bias', 'running_mean', 'running_var'] as const;
/** Frozen batch-norm epsilon (detectron2 FrozenBatchNorm2d). */
export const BN_EPS = 1e-5;

function convBn(out: ParamShapes, name: string, o: number, i: number, k: number): void {
  out.set(`${name}.weight`, [o, i, k, k]);
  for (const p of BN) out.set(`${name}.norm.${p}`, [o]);
}

/** Block names of one stage: `backbone.res2.0`, ..., `roi_heads.res5.2`. */
export function stageBlocks(c: DetectorConfig, stage: 2 | 3 | 4 | 5): { name: string; inC: number; shortcut: boolean }[] {
  const s = stage - 2;
  const prefix = stage === 5 ? 'roi_heads.res5' : `backbone.res${stage}`;
  const inC = s === 0 ? c.stemChannels : c.out[s - 1]!;
  return Array.from({ length: c.blocks[s]! }, (_, i) => ({
    name: `${prefix}.${i}`,
    inC: i === 0 ? inC : c.out[s]!,
    shortcut: i === 0 && inC !== c.out[s],
  }));
}

export function numAnchors(c: DetectorConfig): number {
  return c.anchorSizes.length * c.anchorRatios.length;
}

/** Every parameter the detector reads, in a stable order. */
export function paramShapes(c: DetectorConfig): ParamShapes {
  const m: ParamShapes = new Map();
  convBn(m, 'backbone.stem.conv1', c.stemChannels, 3, 7);
  for (const stage of [2, 3, 4, 5] as const) {
    const s = stage - 2;
    const b = c.bottleneck[s]!;
    const o = c.out[s]!;
    for (const blk of stageBlocks(c, stage)) {
      if (blk.shortcut) convBn(m, `${blk.name}.shortcut`, o, blk.inC, 1);
      convBn(m, `${blk.name}.conv1`, b, blk.inC, 1);
      convBn(m, `${blk.name}.conv2`, b, b, 3);
      convBn(m, `${blk.name}.conv3`, o, b, 1);
    }
  }
  const a = numAnchors(c);
  const rpn = 'proposal_generator.rpn_head';
  m.set(`${rpn}.conv.weight`, [c.rpnChannels, c.out[2], 3, 3]);
  m.set(`${rpn}.conv.bias`, [c.rpnChannels]);
  m.set(`${rpn}.objectness_logits.weight`, [a, c.rpnChannels, 1, 1]);
  m.set(`${rpn}.objectness_logits.bias`, [a]);
  m.set(`${rpn}.anchor_deltas.weight`, [4 * a, c.rpnChannels, 1, 1]);
  m.set(`${rpn}.anchor_deltas.bias`, [4 * a]);
  const d = c.out[3];
  m.set('roi_heads.box_predictor.cls_score.weight', [c.numClasses, d]);
  m.set('roi_heads.box_predictor.cls_score.bias', [c.numClasses]);
  // Class-specific regression over the foreground classes only (detectron2 FastRCNNOutputLayers).
  m.set('roi_heads.box_predictor.bbox_pred.weight', [(c.numClasses - 1) * 4, d]);
  m.set('roi_heads.box_predictor.bbox_pred.bias', [(c.numClasses - 1) * 4]);
  return m;
}

/**
 * The RPN's anchor buffer (`[anchors, 4]`): detectron2 registers the cell anchors as a persistent
 * buffer, so zoo checkpoints carry them, and row k is the anchor of RPN channel k. The converted
 * Caffe weights of bottom-up-attention store py-faster-rcnn's ratio-major anchors here.
 */
export const ANCHOR_BUFFER = 'proposal_generator.anchor_generator.cell_anchors.0';

/**
 * The optional parameter groups a checkpoint may carry beside the detector's own: the anchor
 * buffer, and the attribute head of `faster_rcnn_from_caffe_attr.pkl` (py-bottom-up-attention's
 * `FastRCNNOutputLayers` with `use_attr`: an embedding of the predicted class, `d/8` wide; a
 * ReLU layer from `d + d/8` to `d/4`; `numAttributes` scores, the last being "no attribute", which py-bottom-up-attention drops).
 */
export function optionalParamShapes(c: DetectorConfig): { anchors: ParamShapes; attributes: ParamShapes } {
  const d = c.out[3];
  const p = 'roi_heads.box_predictor';
  return {
    anchors: new Map([[ANCHOR_BUFFER, [numAnchors(c), 4]]]),
    attributes: new Map([
      [`${p}.cls_embedding.weight`, [c.numClasses, d / 8]],
      [`${p}.fc_attr.weight`, [d / 4, d + d / 8]],
      [`${p}.fc_attr.bias`, [d / 4]],
      [`${p}.attr_score.weight`, [c.numAttributes, d / 4]],
      [`${p}.attr_score.bias`, [c.numAttributes]],
    ]),
  };
}

/** Names a checkpoint may carry that the detector does not read (training bookkeeping). */
export function isIgnorable(name: string): boolean {
  return name.endsWith('.num_batches_tracked') || name.startsWith('pixel_mean') || name.startsWith('pixel_std');
}

export class WeightsMismatchError extends Error {
  override name = 'WeightsMismatchError';
}

/** What {@link verifyParams} found in a weight set that fits. */
export interface ParamsFit {
  /** The names the detector reads from this set, in a stable order (required, then optional groups present). */
  names: string[];
  /** True when the set carries the RPN's anchor buffer. */
  anchors: boolean;
  /** True when the set carries the whole attribute head. */
  attributes: boolean;
  /** Names the detector does not know (bookkeeping such as `num_batches_tracked` excluded). */
  unused: string[];
}

/**
 * Checks a weight set against the preset: every required name present, every known name with
 * its shape, the attribute head whole or absent. Unknown names do not fail the check; they are
 * returned (and listed in the error when something else fails). The error names `source` (the
 * file) and lists all problems at once.
 */
export function verifyParams(c: DetectorConfig, got: Map<string, { shape: readonly number[] }>, preset: string, source?: string): ParamsFit {
  const want = paramShapes(c);
  const opt = optionalParamShapes(c);
  const known = new Map([...want, ...opt.anchors, ...opt.attributes]);
  const missing = [...want.keys()].filter((n) => !got.has(n));
  const attrPresent = [...opt.attributes.keys()].filter((n) => got.has(n));
  if (attrPresent.length && attrPresent.length < opt.attributes.size) missing.push(...[...opt.attributes.keys()].filter((n) => !got.has(n)));
  const unused = [...got.keys()].filter((n) => !known.has(n) && !isIgnorable(n));
  const shapes = [...known.entries()]
    .filter(([n, s]) => got.has(n) && got.get(n)!.shape.join(',') !== s.join(','))
    .map(([n, s]) => `${n}: [${got.get(n)!.shape}] where ${preset} needs [${s}]`);
  const anchors = got.has(ANCHOR_BUFFER);
  const attributes = attrPresent.length === opt.attributes.size;
  if (!missing.length && !shapes.length) {
    const names = [...want.keys(), ...(anchors ? opt.anchors.keys() : []), ...(attributes ? opt.attributes.keys() : [])];
    return { names, anchors, attributes, unused };
  }
  const list = (title: string, xs: string[]) => (xs.length ? `\n  ${title} (${xs.length}): ${xs.slice(0, 40).join(', ')}${xs.length > 40 ? ', ...' : ''}` : '');
  throw new WeightsMismatchError(
    `${source ? `${source}: ` : ''}weights do not fit preset ${preset}:` + list('missing', missing) + list('wrong shape', shapes) + list('not used', unused),
  );
}

/**
 * Seeded random weights: He-normal convolutions, frozen batch norms near identity (the last
 * one of each residual branch damped so deep stacks stay finite), heads wide enough that
 * scores are not all ties.
 */
export function randomParams(c: DetectorConfig, seed: number): Params {
  const normal = new Rng(seed);
  const g = () => normal.normal();
  const uniform = new Rng(seed ^ 0x9e3779b9);
  const rand = () => uniform.next();
  const out: Params = new Map();
  for (const [name, shape] of paramShapes(c)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const a = new Float32Array(n);
    const fanIn = shape.slice(1).reduce((x, y) => x * y, 1);
    let fill: () => number;
    if (name.endsWith('norm.weight')) fill = name.includes('conv3') ? () => 0.2 + 0.1 * rand() : () => 0.8 + 0.4 * rand();
    else if (name.endsWith('norm.bias') || name.endsWith('running_mean')) fill = () => 0.1 * (rand() - 0.5);
    else if (name.endsWith('running_var')) fill = () => 0.5 + rand();
    else if (name.endsWith('.bias')) fill = () => 0;
    else if (name.includes('objectness_logits') || name.includes('cls_score')) fill = () => (3 * g()) / Math.sqrt(fanIn);
    else if (name.includes('anchor_deltas') || name.includes('bbox_pred')) fill = () => (0.2 * g()) / Math.sqrt(fanIn);
    // The stem sees raw pixel values (about +-128): scale it down so activations stay near 1.
    else if (name.startsWith('backbone.stem')) fill = () => (g() * Math.sqrt(2 / fanIn)) / 64;
    else fill = () => g() * Math.sqrt(2 / fanIn);
    for (let i = 0; i < n; i++) a[i] = fill();
    out.set(name, a);
  }
  return out;
}

/**
 * @file One decoded image through the detector to its feature row, as a detector worker runs it.
 */
import type { FeatureRow } from './codecs/feature-tsv.ts';
import type { DecodedImage } from './image.ts';
import type { SelectionRule } from './model/boxes.ts';
import type { Detector } from './model/detector.ts';

/**
 * One image through the detector: the TSV row (boxes rescaled to the raw image, as
 * detectron2's detector_postprocess does) or the reason it cannot be written.
 */
export async function extractImage(
  det: Detector,
  imageId: string,
  img: DecodedImage,
  rule: SelectionRule,
  attributes = false,
): Promise<FeatureRow | { reason: string; detail: string }> {
  const input = det.preprocess(img.rgb, img.h, img.w);
  let out;
  try {
    out = await det.run(input, rule, attributes);
  } finally {
    input.dispose();
  }
  const n = out.keep.length;
  const d = det.config.out[3];
  const k = det.config.numClasses;
  const boxes = new Float32Array(n * 4);
  const features = new Float32Array(n * d);
  const clsProb = new Float32Array(n * k);
  const na = det.config.numAttributes;
  const attrProb = attributes ? new Float32Array(n * na) : undefined;
  const sx = img.rawW / img.w;
  const sy = img.rawH / img.h;
  out.keep.forEach((r, i) => {
    boxes[i * 4] = Math.min(Math.max(out.boxes[i * 4]! * sx, 0), img.rawW);
    boxes[i * 4 + 1] = Math.min(Math.max(out.boxes[i * 4 + 1]! * sy, 0), img.rawH);
    boxes[i * 4 + 2] = Math.min(Math.max(out.boxes[i * 4 + 2]! * sx, 0), img.rawW);
    boxes[i * 4 + 3] = Math.min(Math.max(out.boxes[i * 4 + 3]! * sy, 0), img.rawH);
    features.set(out.features.subarray(r * d, (r + 1) * d), i * d);
    clsProb.set(out.probs.subarray(r * k, (r + 1) * k), i * k);
    attrProb?.set(out.attrProbs!.subarray(r * na, (r + 1) * na), i * na);
  });
  const arrays: [string, Float32Array][] = [['features', features], ['cls_prob', clsProb], ['boxes', boxes]];
  if (attrProb) arrays.push(['attr_prob', attrProb]);
  for (const [name, a] of arrays) {
    if (!a.every(Number.isFinite)) return { reason: 'nan-features', detail: `${name} contains NaN or infinity` };
  }
  const row: FeatureRow = { imageId, imageW: img.rawW, imageH: img.rawH, numBoxes: n, boxes, features, clsProb };
  if (attrProb) row.attrProb = attrProb;
  return row;
}

/**
 * @file The bottom-up-attention Faster R-CNN (ResNet C4, VG) in TensorFlow.js ops, NHWC.
 *
 * Backbone: caffe-style ResNet (stride on the first 1x1 of a stage, frozen batch norm folded
 * into the convolution as a per-channel affine), stem + res2..res4 to a stride-16 map.
 * RPN: 3x3 conv + ReLU, 1x1 objectness and deltas over 12 anchors per cell; top-k before NMS,
 * NMS, top-k after (decoding, NMS and ROIPool run in ./boxes.ts). Box head: ROIPool 14x14 on
 * res4, res5 with stride 1 and dilation 2 (the VG variant), mean pool, classifier and
 * class-specific box regression; optionally the attribute head of the `_attr` checkpoints.
 *
 * Anchors: the checkpoint's anchor buffer when it has one (its rows in its order pair with the
 * RPN's channels: the converted Caffe weights use py-faster-rcnn's ratio-major anchors), else
 * detectron2's generated size-major anchors.
 */
import * as tf from '@tensorflow/tfjs';
import { ANCHOR_BUFFER, BN_EPS, numAnchors, optionalParamShapes, stageBlocks, type Params } from './params.ts';
import type { DetectorConfig } from './presets.ts';
import {
  applyDeltas,
  argsortDesc,
  bestForeground,
  clipBoxes,
  gridAnchors,
  nms,
  roiPool,
  selectAdaptive,
  selectK3m,
  sizeMajorCellAnchors,
  type Boxes,
  type SelectionRule,
} from './boxes.ts';

/** caffe pixel mean, BGR (detectron2 PIXEL_MEAN for caffe models; PIXEL_STD is 1). */
export const PIXEL_MEAN_BGR = Object.freeze([102.98, 115.95, 122.77]);
/** detectron2 ROI_BOX_HEAD.BBOX_REG_WEIGHTS. */
export const BOX_REG_WEIGHTS = Object.freeze([10, 10, 5, 5] as const);
const RPN_REG_WEIGHTS = [1, 1, 1, 1] as const;

interface Conv {
  filter: tf.Tensor4D;
  bias: tf.Tensor1D;
  stride: number;
  pad: number;
  dilation: number;
}
interface Block {
  conv1: Conv;
  conv2: Conv;
  conv3: Conv;
  shortcut?: Conv;
}

/** detectron2's ResizeShortestEdge output size for an `h x w` image. */
export function resizedSize(h: number, w: number, minSize: number, maxSize: number): { h: number; w: number } {
  const scale = minSize / Math.min(h, w);
  let nh = h < w ? minSize : scale * h;
  let nw = h < w ? scale * w : minSize;
  if (Math.max(nh, nw) > maxSize) {
    const s = maxSize / Math.max(nh, nw);
    nh *= s;
    nw *= s;
  }
  return { h: Math.floor(nh + 0.5), w: Math.floor(nw + 0.5) };
}

export interface DetectorOutput {
  /** res4 map `[h, w, c]` (NHWC, batch dropped). */
  res4: { data: Float32Array; shape: [number, number, number] };
  /** RPN proposals after NMS, `[r * 4]`, resized-image coordinates. */
  proposals: Boxes;
  /** Mean-pooled res5 features `[r, featureDim]`. */
  features: Float32Array;
  /** Softmax over all classes `[r, numClasses]` (background last). */
  probs: Float32Array;
  /** Selected proposal indices and their boxes (resized-image coordinates). */
  keep: number[];
  boxes: Boxes;
  /** Attribute probabilities `[r, numAttributes]` (softmax over every score), when asked for. */
  attrProbs?: Float32Array;
}

/** The attribute head's tensors, laid out for plain matmuls. */
interface AttributeHead {
  /** `[numClasses, d/8]`: one row per predicted class. */
  embedding: tf.Tensor2D;
  fcW: tf.Tensor2D;
  fcB: tf.Tensor1D;
  scoreW: tf.Tensor2D;
  scoreB: tf.Tensor1D;
}

export class Detector {
  private readonly stem: Conv;
  private readonly stages: Block[][];
  private readonly res5: Block[];
  private readonly rpnConv: Conv;
  private readonly rpnHead: Conv;
  private readonly clsW: tf.Tensor2D;
  private readonly clsB: tf.Tensor1D;
  /** Class-specific box regression `[(numClasses - 1) * 4, d]` (PyTorch layout) and bias: only each box's best class is evaluated. */
  private readonly boxW: Float32Array;
  private readonly boxB: Float32Array;
  private readonly mean: tf.Tensor1D;
  private readonly attr?: AttributeHead;
  /** Cell anchors `[anchors * 4]`, row k for RPN channel k. */
  readonly cellAnchors: Float32Array;
  /** Where the anchors come from: the checkpoint's buffer, or detectron2's generator. */
  readonly anchorSource: 'checkpoint' | 'generated';
  /** RoIs per res5 batch: bounds memory on the full-size model. */
  roiChunk = 64;

  constructor(
    readonly config: DetectorConfig,
    params: Params,
  ) {
    const p = (n: string) => {
      const v = params.get(n);
      if (!v) throw new Error(`parameter ${n} missing`);
      return v;
    };
    const conv = (name: string, k: number, inC: number, outC: number, stride = 1, dilation = 1, bn = true): Conv => {
      const w = p(`${name}.weight`);
      const scale = new Float32Array(outC).fill(1);
      const bias = new Float32Array(outC);
      if (bn) {
        const g = p(`${name}.norm.weight`);
        const b = p(`${name}.norm.bias`);
        const m = p(`${name}.norm.running_mean`);
        const v = p(`${name}.norm.running_var`);
        for (let o = 0; o < outC; o++) {
          scale[o] = g[o]! / Math.sqrt(v[o]! + BN_EPS);
          bias[o] = b[o]! - m[o]! * scale[o]!;
        }
      } else bias.set(p(`${name}.bias`));
      // [out, in, kh, kw] -> [kh, kw, in, out], with the batch-norm scale folded in.
      const f = new Float32Array(k * k * inC * outC);
      for (let o = 0; o < outC; o++)
        for (let i = 0; i < inC; i++)
          for (let y = 0; y < k; y++)
            for (let x = 0; x < k; x++) f[((y * k + x) * inC + i) * outC + o] = w[((o * inC + i) * k + y) * k + x]! * scale[o]!;
      return { filter: tf.tensor4d(f, [k, k, inC, outC]), bias: tf.tensor1d(bias), stride, pad: dilation * ((k - 1) >> 1), dilation };
    };
    const c = config;
    this.stem = conv('backbone.stem.conv1', 7, 3, c.stemChannels, 2);
    this.stem.pad = 3;
    const stage = (s: 2 | 3 | 4 | 5): Block[] => {
      const i = s - 2;
      const b = c.bottleneck[i]!;
      const o = c.out[i]!;
      // res2 keeps the stem's stride; res3 and res4 halve on conv1; res5 either keeps 14x14 and
      // dilates (VG) or halves like detectron2's standard C4 head.
      const firstStride = s === 3 || s === 4 || (s === 5 && c.res5Dilation === 1) ? 2 : 1;
      const dil = s === 5 ? c.res5Dilation : 1;
      return stageBlocks(c, s).map((blk, j) => ({
        conv1: conv(`${blk.name}.conv1`, 1, blk.inC, b, j === 0 ? firstStride : 1),
        conv2: conv(`${blk.name}.conv2`, 3, b, b, 1, dil),
        conv3: conv(`${blk.name}.conv3`, 1, b, o),
        shortcut: blk.shortcut ? conv(`${blk.name}.shortcut`, 1, blk.inC, o, j === 0 ? firstStride : 1) : undefined,
      }));
    };
    this.stages = [stage(2), stage(3), stage(4)];
    this.res5 = stage(5);
    const a = numAnchors(c);
    const rpn = 'proposal_generator.rpn_head';
    this.rpnConv = conv(`${rpn}.conv`, 3, c.out[2], c.rpnChannels, 1, 1, false);
    // Objectness and deltas share one 1x1 convolution: channels [0, a) logits, [a, 5a) deltas.
    const obj = conv(`${rpn}.objectness_logits`, 1, c.rpnChannels, a, 1, 1, false);
    const del = conv(`${rpn}.anchor_deltas`, 1, c.rpnChannels, 4 * a, 1, 1, false);
    this.rpnHead = { ...obj, filter: tf.concat([obj.filter, del.filter], 3), bias: tf.concat([obj.bias, del.bias]) };
    tf.dispose([obj.filter, obj.bias, del.filter, del.bias]);
    const buffer = params.get(ANCHOR_BUFFER);
    this.cellAnchors = buffer ?? sizeMajorCellAnchors(c.anchorSizes, c.anchorRatios);
    this.anchorSource = buffer ? 'checkpoint' : 'generated';
    if (this.cellAnchors.length !== a * 4) throw new Error(`${ANCHOR_BUFFER} holds ${this.cellAnchors.length / 4} anchors, the RPN has ${a}`);
    const d = c.out[3];
    const linear = (name: string, outC: number, inC = d): [tf.Tensor2D, tf.Tensor1D] => [
      tf.tidy(() => tf.tensor2d(p(`${name}.weight`), [outC, inC]).transpose()),
      tf.tensor1d(p(`${name}.bias`)),
    ];
    [this.clsW, this.clsB] = linear('roi_heads.box_predictor.cls_score', c.numClasses);
    this.boxW = p('roi_heads.box_predictor.bbox_pred.weight');
    this.boxB = p('roi_heads.box_predictor.bbox_pred.bias');
    if ([...optionalParamShapes(c).attributes.keys()].every((n) => params.has(n))) {
      const [fcW, fcB] = linear('roi_heads.box_predictor.fc_attr', d / 4, d + d / 8);
      const [scoreW, scoreB] = linear('roi_heads.box_predictor.attr_score', c.numAttributes, d / 4);
      this.attr = { embedding: tf.tensor2d(p('roi_heads.box_predictor.cls_embedding.weight'), [c.numClasses, d / 8]), fcW, fcB, scoreW, scoreB };
    }
    this.mean = tf.tensor1d(PIXEL_MEAN_BGR as number[]);
  }

  /** RGB uint8 HWC pixels to the network input: BGR minus the caffe mean, `[h, w, 3]` float32. */
  preprocess(rgb: Uint8Array, h: number, w: number): tf.Tensor3D {
    return tf.tidy(() => tf.tensor3d(new Float32Array(rgb), [h, w, 3]).reverse(2).sub(this.mean));
  }

  private conv(x: tf.Tensor4D, c: Conv, relu: boolean): tf.Tensor4D {
    return tf.fused.conv2d({
      x,
      filter: c.filter,
      strides: c.stride,
      pad: c.pad,
      dilations: c.dilation,
      bias: c.bias,
      activation: relu ? 'relu' : 'linear',
    });
  }

  private block(x: tf.Tensor4D, b: Block): tf.Tensor4D {
    return tf.tidy(() => {
      const y = this.conv(this.conv(this.conv(x, b.conv1, true), b.conv2, true), b.conv3, false);
      return tf.relu(tf.add(y, b.shortcut ? this.conv(x, b.shortcut, false) : x)) as tf.Tensor4D;
    });
  }

  /** Stem and res2..res4: `[1, h/16, w/16, out[2]]`. */
  backbone(input: tf.Tensor3D): tf.Tensor4D {
    return tf.tidy(() => {
      let x = this.conv(input.expandDims(0) as tf.Tensor4D, this.stem, true);
      x = tf.maxPool(x, 3, 2, 1);
      for (const st of this.stages) for (const b of st) x = this.block(x, b);
      return x;
    });
  }

  /**
   * The RPN head on the res4 map: objectness logits `[h * w * a]` and anchor deltas
   * `[h * w * a * 4]`, both in (y, x, anchor) order.
   */
  async rpnOutputs(res4: tf.Tensor4D): Promise<{ logits: Float32Array; deltas: Float32Array }> {
    const [, h, w] = res4.shape;
    const a = numAnchors(this.config);
    const out = tf.tidy(() => this.conv(this.conv(res4, this.rpnConv, true), this.rpnHead, false));
    const raw = (await out.data()) as Float32Array;
    out.dispose();
    const logits = new Float32Array(h * w * a);
    const deltas = new Float32Array(h * w * a * 4);
    for (let cell = 0; cell < h * w; cell++) {
      logits.set(raw.subarray(cell * 5 * a, cell * 5 * a + a), cell * a);
      deltas.set(raw.subarray(cell * 5 * a + a, (cell + 1) * 5 * a), cell * a * 4);
    }
    return { logits, deltas };
  }

  /**
   * Proposals from the RPN's outputs on an `fh x fw` map of an `imgH x imgW` image: the
   * top-scoring anchors (pre-NMS top-k), decoded against this detector's anchors, clipped,
   * empty ones dropped, NMS, post-NMS top-k. Resized-image coordinates, `[r * 4]`.
   */
  proposalsFrom(logits: Float32Array, deltas: Float32Array, fh: number, fw: number, imgH: number, imgW: number): Boxes {
    const c = this.config;
    const anchors = gridAnchors(fh, fw, c.featureStride, this.cellAnchors);
    const top = argsortDesc(logits).slice(0, c.preNmsTopK);
    const boxes = clipBoxes(applyDeltas(anchors, deltas, RPN_REG_WEIGHTS, 1, top), imgH, imgW);
    const scores = new Float64Array(top.length);
    const valid: number[] = [];
    for (let i = 0; i < top.length; i++) {
      scores[i] = logits[top[i]!]!;
      const bw = boxes[i * 4 + 2]! - boxes[i * 4]!;
      const bh = boxes[i * 4 + 3]! - boxes[i * 4 + 1]!;
      if (bw > 0 && bh > 0 && Number.isFinite(bw + bh + scores[i]!)) valid.push(i);
    }
    const keep = nms(boxes, scores, c.rpnNmsThresh, c.postNmsTopK, valid);
    const props = new Float64Array(keep.length * 4);
    keep.forEach((i, o) => props.set(boxes.subarray(i * 4, i * 4 + 4), o * 4));
    return props;
  }

  /** RPN proposals (resized-image coordinates) from the res4 map. */
  async proposals(res4: tf.Tensor4D, imgH: number, imgW: number): Promise<Boxes> {
    const { logits, deltas } = await this.rpnOutputs(res4);
    return this.proposalsFrom(logits, deltas, res4.shape[1], res4.shape[2], imgH, imgW);
  }

  /** ROIPool on res4, res5, mean pool: `[r, featureDim]`. */
  async boxFeatures(res4: { data: Float32Array; shape: [number, number, number] }, proposals: Boxes): Promise<Float32Array> {
    const c = this.config;
    const [h, w, ch] = res4.shape;
    const r = proposals.length / 4;
    const d = c.out[3];
    const out = new Float32Array(r * d);
    const s = c.poolSize;
    for (let start = 0; start < r; start += this.roiChunk) {
      const end = Math.min(r, start + this.roiChunk);
      const pooled = roiPool(res4.data, h, w, ch, proposals.subarray(start * 4, end * 4), 1 / c.featureStride, s);
      const feat = tf.tidy(() => {
        let x = tf.tensor4d(pooled, [end - start, s, s, ch]);
        for (const b of this.res5) x = this.block(x, b);
        return tf.mean(x, [1, 2]);
      });
      out.set((await feat.data()) as Float32Array, start * d);
      feat.dispose();
    }
    return out;
  }

  /**
   * Class probabilities `[r, numClasses]` and, with `attributes`, attribute probabilities
   * `[r, numAttributes]`: as py-bottom-up-attention's attribute head, the embedding of each box's
   * highest-scoring class (background included) joins the features, then a ReLU layer and the
   * scores; the softmax runs over every score (py-bottom-up-attention drops the last, "no
   * attribute", before its softmax: the first 400 renormalised are its numbers).
   */
  async predict(features: Float32Array, r: number, attributes = false): Promise<{ probs: Float32Array; attrProbs?: Float32Array }> {
    const head = this.attr;
    if (attributes && !head) throw new Error('these weights have no attribute head');
    const outs = tf.tidy(() => {
      const x = tf.tensor2d(features, [r, this.config.out[3]]);
      const logits = tf.add(tf.matMul(x, this.clsW), this.clsB);
      const res = [tf.softmax(logits)];
      if (attributes && head) {
        const emb = tf.gather(head.embedding, tf.argMax(logits, 1));
        const hidden = tf.relu(tf.add(tf.matMul(tf.concat([x, emb], 1), head.fcW), head.fcB));
        res.push(tf.softmax(tf.add(tf.matMul(hidden, head.scoreW), head.scoreB)));
      }
      return res;
    });
    const [probs, attrProbs] = (await Promise.all(outs.map((t) => t.data()))) as Float32Array[];
    tf.dispose(outs);
    return { probs: probs!, attrProbs };
  }

  /**
   * The class-specific box deltas `[r * 4]` of each box for one foreground class (`classes[i]`),
   * the rows of `bbox_pred` the selection reads: detectron2 computes all `(numClasses - 1) * 4`
   * and picks these, which at 1601 classes costs more than the classifier.
   */
  classDeltas(features: Float32Array, classes: Int32Array): Float32Array {
    const d = this.config.out[3];
    const out = new Float32Array(classes.length * 4);
    for (let i = 0; i < classes.length; i++) {
      const x = features.subarray(i * d, (i + 1) * d);
      for (let j = 0; j < 4; j++) {
        const row = classes[i]! * 4 + j;
        const w = this.boxW.subarray(row * d, (row + 1) * d);
        let acc = 0;
        for (let t = 0; t < d; t++) acc += x[t]! * w[t]!;
        out[i * 4 + j] = acc + this.boxB[row]!;
      }
    }
    return out;
  }

  /** The whole detector on one preprocessed image of size `imgH x imgW`. */
  async run(input: tf.Tensor3D, rule: SelectionRule = 'k3m', attributes = false): Promise<DetectorOutput> {
    const [imgH, imgW] = input.shape;
    const map = this.backbone(input);
    const res4 = { data: (await map.data()) as Float32Array, shape: map.shape.slice(1) as [number, number, number] };
    let proposals: Boxes;
    try {
      proposals = await this.proposals(map, imgH, imgW);
    } finally {
      map.dispose();
    }
    const r = proposals.length / 4;
    const k = this.config.numClasses;
    const features = r ? await this.boxFeatures(res4, proposals) : new Float32Array(0);
    const empty = new Float32Array(0);
    const { probs, attrProbs } = r ? await this.predict(features, r, attributes) : { probs: empty, attrProbs: attributes ? empty : undefined };
    let sel;
    if (rule === 'k3m') {
      const best = bestForeground(probs, k);
      const pred = clipBoxes(applyDeltas(proposals, this.classDeltas(features, best.classes), BOX_REG_WEIGHTS), imgH, imgW);
      sel = selectK3m(best.scores, pred);
    } else sel = selectAdaptive(probs, k, proposals);
    return { res4, proposals, features, probs, keep: sel.keep, boxes: sel.boxes, attrProbs };
  }

  dispose(): void {
    const convs: Conv[] = [this.stem, this.rpnConv, this.rpnHead];
    for (const b of [...this.stages.flat(), ...this.res5]) convs.push(b.conv1, b.conv2, b.conv3, ...(b.shortcut ? [b.shortcut] : []));
    const attr = this.attr ? [this.attr.embedding, this.attr.fcW, this.attr.fcB, this.attr.scoreW, this.attr.scoreB] : [];
    tf.dispose([...convs.flatMap((c) => [c.filter, c.bias]), this.clsW, this.clsB, this.mean, ...attr]);
  }
}

/**
 * @file Box arithmetic in plain typed arrays, as detectron2 and torchvision define it:
 * anchors, delta decoding, clipping, greedy NMS, ROIPool (with its integer quantisation), and
 * the two box-selection rules. Everything here is per image and small next to the network,
 * so it runs in JS where its rounding can follow the reference exactly.
 */

/** Boxes are `[n * 4]` x1, y1, x2, y2. */
export type Boxes = Float64Array;

/**
 * detectron2 DefaultAnchorGenerator's cell anchors, generated: size-major (every ratio of the
 * first size, then the next size), centred on 0, `[sizes * ratios * 4]`. A checkpoint's anchor
 * buffer (`proposal_generator.anchor_generator.cell_anchors.0`), when present, replaces these.
 */
export function sizeMajorCellAnchors(sizes: readonly number[], ratios: readonly number[]): Float32Array {
  const cell: number[] = [];
  for (const size of sizes) {
    for (const r of ratios) {
      const aw = Math.sqrt((size * size) / r);
      const ah = r * aw;
      cell.push(-aw / 2, -ah / 2, aw / 2, ah / 2);
    }
  }
  return Float32Array.from(cell);
}

/**
 * detectron2's grid of anchors, offset 0: the cell anchors `[a * 4]` shifted to every cell
 * (x * stride, y * stride), in (y, x, anchor) order, so anchor k of a cell pairs with RPN
 * channel k.
 */
export function gridAnchors(h: number, w: number, stride: number, cell: ArrayLike<number>): Boxes {
  const a = cell.length / 4;
  const out = new Float64Array(h * w * a * 4);
  let p = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let k = 0; k < a; k++) {
        // Anchors are float32 in detectron2; rounding here keeps decoded boxes bit-close.
        out[p++] = Math.fround(x * stride + cell[k * 4]!);
        out[p++] = Math.fround(y * stride + cell[k * 4 + 1]!);
        out[p++] = Math.fround(x * stride + cell[k * 4 + 2]!);
        out[p++] = Math.fround(y * stride + cell[k * 4 + 3]!);
      }
    }
  }
  return out;
}

/** log(1000 / 16): detectron2's clamp on dw, dh. */
export const SCALE_CLAMP = Math.log(1000 / 16);

/**
 * Box2BoxTransform.apply_deltas for the boxes `idx` (indices into `boxes`) with `k` delta
 * groups each (class-specific regression): returns `[idx.length * k * 4]`.
 */
export function applyDeltas(
  boxes: ArrayLike<number>,
  deltas: ArrayLike<number>,
  weights: readonly [number, number, number, number],
  k = 1,
  idx?: ArrayLike<number>,
): Boxes {
  const n = idx ? idx.length : boxes.length / 4;
  const out = new Float64Array(n * k * 4);
  const [wx, wy, ww, wh] = weights;
  for (let i = 0; i < n; i++) {
    const b = idx ? idx[i]! : i;
    const x1 = boxes[b * 4]!;
    const y1 = boxes[b * 4 + 1]!;
    const bw = boxes[b * 4 + 2]! - x1;
    const bh = boxes[b * 4 + 3]! - y1;
    const cx = x1 + 0.5 * bw;
    const cy = y1 + 0.5 * bh;
    for (let j = 0; j < k; j++) {
      const d = (b * k + j) * 4;
      const dx = deltas[d]! / wx;
      const dy = deltas[d + 1]! / wy;
      const dw = Math.min(deltas[d + 2]! / ww, SCALE_CLAMP);
      const dh = Math.min(deltas[d + 3]! / wh, SCALE_CLAMP);
      const pcx = dx * bw + cx;
      const pcy = dy * bh + cy;
      const pw = Math.exp(dw) * bw;
      const ph = Math.exp(dh) * bh;
      const o = (i * k + j) * 4;
      out[o] = pcx - 0.5 * pw;
      out[o + 1] = pcy - 0.5 * ph;
      out[o + 2] = pcx + 0.5 * pw;
      out[o + 3] = pcy + 0.5 * ph;
    }
  }
  return out;
}

/** detectron2 Boxes.clip: x into [0, w], y into [0, h], in place. */
export function clipBoxes(b: Boxes, h: number, w: number): Boxes {
  for (let i = 0; i < b.length; i += 4) {
    b[i] = Math.min(Math.max(b[i]!, 0), w);
    b[i + 1] = Math.min(Math.max(b[i + 1]!, 0), h);
    b[i + 2] = Math.min(Math.max(b[i + 2]!, 0), w);
    b[i + 3] = Math.min(Math.max(b[i + 3]!, 0), h);
  }
  return b;
}

/** Indices sorted by score, highest first; equal scores keep index order. */
export function argsortDesc(scores: ArrayLike<number>, candidates?: ArrayLike<number>): number[] {
  const idx = candidates ? Array.from(candidates) : Array.from({ length: scores.length }, (_, i) => i);
  return idx.sort((a, b) => scores[b]! - scores[a]! || a - b);
}

/**
 * Greedy NMS as torchvision.ops.nms: visit boxes by descending score, drop any whose IoU with
 * a kept box exceeds `thresh` (areas without +1). Returns kept indices in score order, at most
 * `maxOut`.
 */
export function nms(boxes: ArrayLike<number>, scores: ArrayLike<number>, thresh: number, maxOut = Infinity, candidates?: ArrayLike<number>): number[] {
  const order = argsortDesc(scores, candidates);
  const keep: number[] = [];
  const area = (i: number) => (boxes[i * 4 + 2]! - boxes[i * 4]!) * (boxes[i * 4 + 3]! - boxes[i * 4 + 1]!);
  for (const i of order) {
    if (keep.length >= maxOut) break;
    const ax1 = boxes[i * 4]!;
    const ay1 = boxes[i * 4 + 1]!;
    const ax2 = boxes[i * 4 + 2]!;
    const ay2 = boxes[i * 4 + 3]!;
    const ai = area(i);
    let ok = true;
    for (const j of keep) {
      const w = Math.max(0, Math.min(ax2, boxes[j * 4 + 2]!) - Math.max(ax1, boxes[j * 4]!));
      const h = Math.max(0, Math.min(ay2, boxes[j * 4 + 3]!) - Math.max(ay1, boxes[j * 4 + 1]!));
      const inter = w * h;
      if (inter / (ai + area(j) - inter) > thresh) {
        ok = false;
        break;
      }
    }
    if (ok) keep.push(i);
  }
  return keep;
}

/** C's round(): halves away from zero (torchvision's roi_pool uses it). */
const cRound = (x: number) => Math.sign(x) * Math.round(Math.abs(x));
const f = Math.fround;

/**
 * torchvision roi_pool (detectron2 `ROIPool`) on an NHWC map `[h, w, c]`: box corners scaled
 * and rounded to integer cells, bins of `roi/size` cells with floor/ceil edges, max inside,
 * 0 for empty bins. Arithmetic in float32 like the reference kernel, so bin edges agree.
 * Returns `[n, size, size, c]`.
 */
export function roiPool(map: Float32Array, h: number, w: number, c: number, boxes: ArrayLike<number>, scale: number, size: number): Float32Array {
  const n = boxes.length / 4;
  const out = new Float32Array(n * size * size * c);
  const acc = new Float32Array(c);
  const s = f(scale);
  for (let r = 0; r < n; r++) {
    const x1 = cRound(f(f(boxes[r * 4]!) * s));
    const y1 = cRound(f(f(boxes[r * 4 + 1]!) * s));
    const x2 = cRound(f(f(boxes[r * 4 + 2]!) * s));
    const y2 = cRound(f(f(boxes[r * 4 + 3]!) * s));
    const binH = f(Math.max(y2 - y1 + 1, 1) / size);
    const binW = f(Math.max(x2 - x1 + 1, 1) / size);
    for (let ph = 0; ph < size; ph++) {
      const hs = Math.min(Math.max(Math.floor(f(ph * binH)) + y1, 0), h);
      const he = Math.min(Math.max(Math.ceil(f((ph + 1) * binH)) + y1, 0), h);
      for (let pw = 0; pw < size; pw++) {
        const ws = Math.min(Math.max(Math.floor(f(pw * binW)) + x1, 0), w);
        const we = Math.min(Math.max(Math.ceil(f((pw + 1) * binW)) + x1, 0), w);
        const o = ((r * size + ph) * size + pw) * c;
        if (he <= hs || we <= ws) continue;
        acc.fill(-Infinity);
        for (let y = hs; y < he; y++) {
          for (let x = ws; x < we; x++) {
            const base = (y * w + x) * c;
            for (let ch = 0; ch < c; ch++) {
              const v = map[base + ch]!;
              if (v > acc[ch]!) acc[ch] = v;
            }
          }
        }
        out.set(acc, o);
      }
    }
  }
  return out;
}

/** Box-selection rules (k3m-reference.md 2.4 and the original generate_tsv.py). */
export const SELECTION_RULES = Object.freeze({
  /** K3M: NMS at 0.5, 0.6, ... 0.9 until 36 boxes survive; fewer allowed. */
  k3m: { maxBoxes: 36 },
  /** bottom-up-attention generate_tsv.py: boxes with confidence >= 0.2, at least 10, at most 100. */
  adaptive: { minBoxes: 10, maxBoxes: 100, confThresh: 0.2, nmsThresh: 0.3 },
});
export type SelectionRule = keyof typeof SELECTION_RULES;

export interface Selection {
  /** Proposal indices kept, in output order. */
  keep: number[];
  /** Output boxes in resized-image coordinates, `[keep.length * 4]`. */
  boxes: Boxes;
}

/**
 * Each box's best foreground class and its probability: the background column (the last) is
 * dropped, ties go to the lower class (torch's `max`).
 */
export function bestForeground(probs: Float32Array, k: number): { classes: Int32Array; scores: Float64Array } {
  const n = probs.length / k;
  const classes = new Int32Array(n);
  const scores = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let m = -Infinity;
    for (let j = 0; j < k - 1; j++) {
      const v = probs[i * k + j]!;
      if (v > m) {
        m = v;
        classes[i] = j;
      }
    }
    scores[i] = m;
  }
  return { classes, scores };
}

/**
 * K3M's rule as py-bottom-up-attention's `fast_rcnn_inference_single_image` runs it, given each
 * box's best foreground score and that class's regressed box (clipped; see
 * {@link bestForeground}): NMS, keep the first `maxBoxes`; raise the NMS threshold from 0.5 by
 * 0.1 up to 0.9 until exactly `maxBoxes` survive. That function takes `score_thresh=0.2` but
 * never applies it.
 */
export function selectK3m(scores: Float64Array, classBoxes: Boxes, maxBoxes = 36): Selection {
  let keep: number[] = [];
  for (const t of [0.5, 0.6, 0.7, 0.8, 0.9]) {
    keep = nms(classBoxes, scores, t, maxBoxes);
    if (keep.length === maxBoxes) break;
  }
  const boxes = new Float64Array(keep.length * 4);
  keep.forEach((i, o) => boxes.set(classBoxes.subarray(i * 4, i * 4 + 4), o * 4));
  return { keep, boxes };
}

/**
 * The original adaptive rule: per foreground class, NMS (0.3) over the proposals; a proposal's
 * confidence is its best surviving class score; keep those >= 0.2 in proposal order, else the
 * top `minBoxes`, at most the top `maxBoxes`. Output boxes are the proposals themselves.
 */
export function selectAdaptive(probs: Float32Array, k: number, proposals: ArrayLike<number>, opts = SELECTION_RULES.adaptive): Selection {
  const n = probs.length / k;
  const maxConf = new Float64Array(n);
  const col = new Float64Array(n);
  for (let j = 0; j < k - 1; j++) {
    let useful = false;
    for (let i = 0; i < n; i++) {
      col[i] = probs[i * k + j]!;
      if (col[i]! > maxConf[i]!) useful = true;
    }
    // A class that beats no box's current confidence cannot change the result.
    if (!useful) continue;
    for (const i of nms(proposals, col, opts.nmsThresh)) if (col[i]! > maxConf[i]!) maxConf[i] = col[i]!;
  }
  let keep = Array.from({ length: n }, (_, i) => i).filter((i) => maxConf[i]! >= opts.confThresh);
  if (keep.length < opts.minBoxes) keep = argsortDesc(maxConf).slice(0, opts.minBoxes);
  else if (keep.length > opts.maxBoxes) keep = argsortDesc(maxConf).slice(0, opts.maxBoxes);
  const boxes = new Float64Array(keep.length * 4);
  keep.forEach((i, o) => {
    for (let q = 0; q < 4; q++) boxes[o * 4 + q] = proposals[i * 4 + q]!;
  });
  return { keep, boxes };
}

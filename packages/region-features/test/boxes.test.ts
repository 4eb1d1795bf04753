/** Box arithmetic: ROIPool's quantisation, NMS, anchors, and the K3M threshold climb. */
import { describe, expect, it } from 'vitest';
import { applyDeltas, bestForeground, gridAnchors, nms, roiPool, selectK3m, sizeMajorCellAnchors } from '../src/model/boxes.ts';
import { resizedSize } from '../src/model/detector.ts';

describe('roiPool (torchvision roi_pool semantics)', () => {
  const map = Float32Array.from({ length: 16 }, (_, i) => i); // 4x4x1, value = y * 4 + x
  it('rounds corners to cells, uses floor/ceil bin edges (bins overlap), max inside', () => {
    // x2 = round(31 / 16) = 2: a 3x3-cell RoI in 2x2 bins of 1.5 cells.
    expect(Array.from(roiPool(map, 4, 4, 1, [0, 0, 31, 31], 1 / 16, 2))).toEqual([5, 6, 9, 10]);
  });
  it('rounds halves away from zero and gives 0 for bins outside the map', () => {
    // 8 / 16 = 0.5 rounds to 1: the RoI starts at cell 1.
    expect(Array.from(roiPool(map, 4, 4, 1, [8, 8, 8, 8], 1 / 16, 1))).toEqual([5]);
    expect(Array.from(roiPool(map, 4, 4, 1, [200, 200, 220, 220], 1 / 16, 2))).toEqual([0, 0, 0, 0]);
  });
});

describe('nms', () => {
  it('keeps by score, drops IoU above the threshold, honours the limit', () => {
    const boxes = [0, 0, 10, 10, 1, 1, 11, 11, 20, 20, 30, 30, 0, 0, 10, 9];
    expect(nms(boxes, [0.9, 0.8, 0.7, 0.95], 0.5)).toEqual([3, 2]);
    expect(nms(boxes, [0.9, 0.8, 0.7, 0.95], 0.95)).toEqual([3, 0, 1, 2]);
    expect(nms(boxes, [0.9, 0.8, 0.7, 0.95], 0.95, 2)).toEqual([3, 0]);
  });
});

describe('anchors and deltas', () => {
  it('puts 12 anchors per cell in (y, x, anchor) order centred on the cell corner', () => {
    const a = gridAnchors(1, 2, 16, sizeMajorCellAnchors([64, 128, 256, 512], [0.5, 1, 2]));
    expect(a.length).toBe(2 * 12 * 4);
    expect(Array.from(a.subarray(4, 8))).toEqual([-32, -32, 32, 32]); // size 64, ratio 1
    expect(Array.from(a.subarray(48 + 4, 48 + 8))).toEqual([-16, -32, 48, 32]); // next cell, x + 16
  });
  it('takes given cell anchors in their order (a checkpoint buffer, ratio-major)', () => {
    const cell = [-37, -15, 54, 32, -83, -39, 100, 56];
    const a = gridAnchors(2, 1, 16, cell);
    expect(Array.from(a)).toEqual([-37, -15, 54, 32, -83, -39, 100, 56, -37, 1, 54, 48, -83, -23, 100, 72]);
  });
  it('zero deltas give the box back; dw is clamped', () => {
    expect(Array.from(applyDeltas([0, 0, 10, 20], [0, 0, 0, 0], [1, 1, 1, 1]))).toEqual([0, 0, 10, 20]);
    const big = applyDeltas([0, 0, 10, 10], [0, 0, 100, 0], [1, 1, 1, 1]);
    expect(big[2]! - big[0]!).toBeCloseTo(10 * (1000 / 16), 6);
  });
});

describe('selectK3m', () => {
  it('raises the NMS threshold until 36 boxes survive, else keeps what 0.9 leaves', () => {
    // 40 boxes sliding by three pixels: many suppressed at 0.5.
    const n = 40;
    const scores = Float64Array.from({ length: n }, (_, i) => 1 - i / 100);
    const boxes = new Float64Array(n * 4);
    for (let i = 0; i < n; i++) boxes.set([i * 3, 0, i * 3 + 10, 10], i * 4);
    const s = selectK3m(scores, boxes);
    expect(s.keep).toHaveLength(36);
    expect(s.keep[0]).toBe(0);
    const few = selectK3m(scores.subarray(0, 5), boxes.subarray(0, 5 * 4));
    expect(few.keep).toHaveLength(5);
  });
  it('bestForeground ignores the background column (the last); selection follows the scores', () => {
    const probs = Float32Array.from([0.1, 0.2, 0.7, 0.3, 0.1, 0.6]);
    const best = bestForeground(probs, 3);
    expect(Array.from(best.classes)).toEqual([1, 0]);
    expect(Array.from(best.scores, (v) => Math.fround(v))).toEqual([Math.fround(0.2), Math.fround(0.3)]);
    const s = selectK3m(best.scores, Float64Array.from([10, 10, 11, 11, 5, 5, 6, 6]));
    expect(s.keep).toEqual([1, 0]);
    expect(Array.from(s.boxes)).toEqual([5, 5, 6, 6, 10, 10, 11, 11]);
  });
});

describe('resizedSize (detectron2 ResizeShortestEdge)', () => {
  it('scales the short side, caps the long side, rounds half up', () => {
    expect(resizedSize(480, 640, 800, 1333)).toEqual({ h: 800, w: 1067 });
    expect(resizedSize(100, 1000, 800, 1333)).toEqual({ h: 133, w: 1333 });
    expect(resizedSize(160, 320, 256, 416)).toEqual({ h: 208, w: 416 });
  });
});

/**
 * Tiny synthetic records and a fake encoder for the evaluation tests: no model, no LMDB. Each
 * item's title, image and knowledge all carry its category (and the image carries the item's own
 * signature), so a probe on the fake representations can learn the tasks.
 */
import type { K3mRecord } from '@k3m-kit/lmdb-writer';
import type { RepresentationEncoder } from '../src/eval/encoder.ts';
import type { Items } from '../src/eval/items.ts';
import type { Matrix } from '../src/eval/probe.ts';

export const COLOURS = ['红色', '蓝色', '绿色', '黑色'];

export function makeRecords(n: number, categories = 4, featureDim = 8, boxes = 2): K3mRecord[] {
  return Array.from({ length: n }, (_, i) => {
    const c = i % categories;
    const features = new Float32Array(boxes * featureDim);
    for (let b = 0; b < boxes; b++) {
      features[b * featureDim + (c % featureDim)] = 1;
      features[b * featureDim + ((i * 7 + b) % featureDim)] += 0.5 + ((i * 13) % 11) / 11;
    }
    return {
      features,
      clsProb: new Float32Array(boxes * 3).fill(1 / 3),
      boxes: Float32Array.from({ length: boxes * 4 }, (_, k) => (k % 4 < 2 ? 0 : 10 + i)),
      numBoxes: boxes,
      imageH: 100,
      imageW: 100,
      imageId: `img${i}`,
      caption: `商品${i} 类${c}`,
      pv: `颜色:${COLOURS[c % COLOURS.length]};编号:${i};`,
      category: `cat${c}`,
      featureDim,
      numClasses: 3,
    };
  });
}

/**
 * Features from the record's visible content only: [title says category c] (one-hot),
 * [knowledge colour] (one-hot), [image mean features], [title item number / n, image box size].
 */
export class FakeEncoder implements RepresentationEncoder {
  calls = 0;
  constructor(
    private readonly categories = 4,
    private readonly featureDim = 8,
  ) {}

  get dim(): number {
    return this.categories * 2 + this.featureDim + 2;
  }

  async encode(records: readonly K3mRecord[]): Promise<Matrix> {
    this.calls += records.length;
    const data = new Float32Array(records.length * this.dim);
    records.forEach((r, i) => {
      const row = data.subarray(i * this.dim, (i + 1) * this.dim);
      const t = /类(\d+)/.exec(r.caption);
      if (t) row[Number(t[1])] = 1;
      const k = COLOURS.findIndex((col) => r.pv.includes(col));
      if (k >= 0) row[this.categories + k] = 1;
      for (let b = 0; b < r.numBoxes; b++) {
        for (let f = 0; f < this.featureDim; f++) row[2 * this.categories + f]! += r.features[b * r.featureDim + f]! / r.numBoxes;
      }
      const num = /商品(\d+)/.exec(r.caption);
      row[2 * this.categories + this.featureDim] = num ? Number(num[1]) / 100 : 0;
      row[2 * this.categories + this.featureDim + 1] = r.numBoxes ? r.boxes[2]! / 100 : 0;
    });
    return { data, rows: records.length, cols: this.dim };
  }
}

/** Every record of `items`, read now. */
export function toArray(items: Items): K3mRecord[] {
  return Array.from({ length: items.length }, (_, i) => items.get(i));
}

/**
 * Products 0..7, each a one-hot direction in the image features. A gallery listing of product
 * p shows only p; a query picture shows one or two products (one box each). Every title and
 * knowledge text is the same, so the image is what identifies the instance.
 */
export function instanceRecords(): { gallery: K3mRecord[]; queries: K3mRecord[] } {
  const [template] = makeRecords(1, 4, 8, 2);
  const listing = (id: string, products: number[], k: number): K3mRecord => {
    const features = new Float32Array(2 * 8);
    products.forEach((p, b) => (features[b * 8 + p] = 1));
    if (products.length === 1) features[8 + products[0]!] = 1;
    features[(k * 3) % 16]! += 0.05;
    return { ...template!, imageId: id, features, caption: '商品', category: `cat${products[0]! % 4}`, extra: { instanceLabels: products.map((p) => `p${p}`) } };
  };
  const gallery = [...Array(8).keys()].flatMap((p) => [0, 1, 2].map((k) => listing(`g${p}_${k}`, [p], k)));
  const queries = [
    ...[...Array(8).keys()].map((p) => listing(`q${p}`, [p], 9)),
    listing('q01', [0, 1], 10),
    listing('q23', [2, 3], 11),
    // A product the gallery does not hold.
    { ...listing('q-unknown', [5], 12), extra: { instanceLabels: ['p99'] } },
  ];
  return { gallery, queries };
}

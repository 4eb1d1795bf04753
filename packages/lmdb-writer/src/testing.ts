/**
 * @file Test-only fixtures: a small work directory with segment files, feature TSVs and
 * meta.json, written through the owners' encoders (raw-ingest, region-features), and the real
 * sample's item text.
 */
import { closeSync, existsSync, mkdirSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { decodeRawTsvFile, encodeKnowledge, encodeManifest, encodeSegmentRow, segmentFileName, stripHashes, type Split } from '@k3m-kit/raw-ingest';
import { encodeFeatureRow, featureTsvPath, writeFeatureMeta, type FeatureRow } from '@k3m-kit/region-features/feature-tsv';
import { Rng } from '@k3m-kit/core';

export interface FixtureSegment {
  seg: number;
  split: Split;
  items: number;
}

export interface FixtureOptions {
  workDir: string;
  segments?: FixtureSegment[];
  featureDim?: number;
  numClasses?: number;
  seed?: number;
  /** Boxes for item `k` of segment `seg` (0 .. 36); default 1 + (k % 36). */
  boxes?: (seg: number, k: number) => number;
  /** Items without an image (empty pic, no feature row); default every 7th. */
  missing?: (seg: number, k: number) => boolean;
  /** Item text by running number (all segments in order); default: a few generated items. */
  text?: (n: number) => { title: string; pv: string; category: string; itemId: string };
  /**
   * How array values are drawn: `uniform` (default) spreads them evenly over a range; `detector`
   * looks like a detector's output, for benchmarks whose cost depends on the values (float16
   * conversion): features >= 0 with half of them exactly 0 (ReLU), cls_prob each box's softmax
   * over Gaussian logits (standard deviation 3: most classes get less than float16's smallest
   * normal, 6.1e-5).
   */
  values?: 'uniform' | 'detector';
  /** Rewrites a split's TSV lines before they are written (to inject bad rows). */
  editTsv?: (split: Split, lines: string[]) => string[];
}

const TITLES = ['夏季新款纯棉T恤', '', '不锈钢保温杯 500ml', '儿童益智积木玩具', '真皮商务双肩包'];
const PVS = ['颜色:红色;材质:棉', '', '容量:500ml;材质:不锈钢;', '适用年龄:3-6岁', '品牌:无;风格:商务;颜色:黑色'];

/** `rows` softmax rows of `cols` Gaussian logits (Box-Muller) with standard deviation `sd`. */
function softmaxRows(rows: number, cols: number, sd: number, rand: () => number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const row = out.subarray(r * cols, (r + 1) * cols);
    for (let c = 0; c < cols; c++) row[c] = sd * Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
    const max = row.reduce((a, b) => Math.max(a, b), -Infinity);
    let sum = 0;
    for (let c = 0; c < cols; c++) sum += row[c] = Math.exp(row[c]! - max);
    for (let c = 0; c < cols; c++) row[c] = row[c]! / sum;
  }
  return out;
}

/** Writes the fixture and returns the feature rows by image id (what every record must hold). */
export async function writeFixtureWorkDir(o: FixtureOptions): Promise<Map<string, FeatureRow>> {
  const segments = o.segments ?? [
    { seg: 0, split: 'train' as const, items: 20 },
    { seg: 1, split: 'val' as const, items: 8 },
  ];
  const featureDim = o.featureDim ?? 16;
  const numClasses = o.numClasses ?? 5;
  const rng = new Rng(o.seed ?? 7);
  const rand = () => rng.next();
  const boxes = o.boxes ?? ((_s: number, k: number) => 1 + (k % 36));
  const missing = o.missing ?? ((_s: number, k: number) => k % 7 === 3);
  mkdirSync(o.workDir, { recursive: true });
  const rows = new Map<string, FeatureRow>();
  const tsv: Record<Split, string[]> = { train: [], val: [] };
  const text = o.text ?? ((n: number) => ({ title: TITLES[n % TITLES.length]!, pv: PVS[n % PVS.length]!, category: `cat${n % 3}`, itemId: String(1000 + n) }));
  let item = 0;
  for (const s of segments) {
    const lines: string[] = [];
    for (let k = 0; k < s.items; k++) {
      const imageId = `${k}_s${s.seg}`;
      const gone = missing(s.seg, k);
      lines.push(encodeSegmentRow({ imageId, pic: gone ? '' : `${imageId}.jpg`, ...text(item++) }));
      if (gone) continue;
      const n = boxes(s.seg, k);
      const fill = (len: number, scale: number) => Float32Array.from({ length: len }, () => (rand() - 0.25) * scale);
      const detector = o.values === 'detector';
      const row: FeatureRow = {
        imageId,
        imageW: 640 + k,
        imageH: 480 + s.seg,
        numBoxes: n,
        boxes: fill(n * 4, 600),
        features: detector ? Float32Array.from({ length: n * featureDim }, () => (rand() < 0.5 ? 0 : -Math.log(1 - rand()))) : fill(n * featureDim, 10),
        clsProb: detector ? softmaxRows(n, numClasses, 3, rand) : fill(n * numClasses, 1),
      };
      rows.set(imageId, row);
      tsv[s.split].push(encodeFeatureRow(row));
    }
    writeFileSync(join(o.workDir, segmentFileName(s.seg)), lines.join('\n') + '\n');
  }
  writeFileSync(
    join(o.workDir, 'segments.json'),
    encodeManifest({ version: 1, segmentSize: 1000, segments: segments.map((s) => ({ seg: s.seg, split: s.split, file: segmentFileName(s.seg), items: s.items })) }),
  );
  for (const split of ['train', 'val'] as const) {
    const path = featureTsvPath(o.workDir, split, 0);
    mkdirSync(join(path, '..'), { recursive: true });
    const lines = o.editTsv ? o.editTsv(split, tsv[split]) : tsv[split];
    // Line by line: a benchmark's TSV is larger than the longest string V8 allows.
    const fd = openSync(path, 'w');
    for (const l of lines) writeSync(fd, l + '\n');
    closeSync(fd);
  }
  await writeFeatureMeta(o.workDir, { featureDim, numClasses, maxBoxes: 36, preset: 'fixture', weights: 'random-init', form: 'k3m' });
  return rows;
}

/**
 * Item text of the real sample (`shared/data/k3m-sample/train.tsv`), read through raw-ingest's
 * raw TSV codec and cleaned as build-data does; undefined when absent.
 */
export async function realSampleText(
  path: string,
): Promise<{ title: string; pv: string; category: string; itemId: string }[] | undefined> {
  if (!existsSync(path)) return undefined;
  const out: { title: string; pv: string; category: string; itemId: string }[] = [];
  for await (const r of decodeRawTsvFile(path)) {
    if (r.ok) out.push({ itemId: r.itemId, title: r.title, pv: stripHashes(encodeKnowledge(r.pairs)), category: r.category });
  }
  return out;
}

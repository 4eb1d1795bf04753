/**
 * @file One record to one model sample, as the reference's `BertPreprocessBatch.__call__` and
 * `convert_example_to_features` (k3m-reference.md 3.3), in its order: truncate, mask the title,
 * mask the knowledge values, mask regions, add [CLS]/[SEP], pad, index pairs on the
 * [CLS]-prefixed knowledge ids.
 *
 * Float arithmetic on boxes follows the reference's float32 numpy/torch steps (`Math.fround`
 * after each operation), so locations and the overlap mask are bit-identical to it.
 *
 * Missing modalities are ordinary inputs (reference 6):
 * - empty title: `[CLS][SEP]`, no labels;
 * - empty knowledge: `[CLS][SEP]`, no labels, no index pairs;
 * - no image (numBoxes 0): every region row zero, image mask 0, no region labels; collation then
 *   gives the global row zero features, location [0,0,1,1,1] and mask 1, so only it is visible.
 */
import type { K3mRecord } from '@k3m-kit/lmdb-writer';
import type { Rng } from '@k3m-kit/core';
import type { K3mTokenizer, VocabInfo } from './tokenizer.ts';

/** How knowledge value tokens are masked. */
export const KNOWLEDGE_MASKING = Object.freeze({
  /** The reference's deterministic rule: every value of PVs 2..n (the only value when n = 1). */
  reference: 'reference',
  /** Each value (PV #1 included) independently with `knowledgeMaskProb`, all its tokens. */
  random: 'random',
  /** Nothing masked (evaluation, feature extraction). */
  none: 'none',
} as const);
export type KnowledgeMasking = keyof typeof KNOWLEDGE_MASKING;

export interface PreprocessOptions {
  /** Title length incl. [CLS]/[SEP] (36). */
  titleLen?: number;
  /** Knowledge length incl. [CLS]/[SEP] (48). */
  pvLen?: number;
  /** Region rows without the global row (36); records with more boxes keep the first ones. */
  regions?: number;
  /** Index pairs kept per item (10; the reference crashes beyond, bug 12). */
  maxPairs?: number;
  featureDim?: number;
  numClasses?: number;
  /** Title token masking probability (0.15); 0 turns it off. 80% [MASK], 10% random id, 10% kept. */
  titleMaskProb?: number;
  knowledgeMasking?: KnowledgeMasking;
  /** Share of values masked in `random` knowledge masking (0.15). */
  knowledgeMaskProb?: number;
  /** Region selection probability (0.15). */
  regionMaskProb?: number;
  /** Share of selected regions whose feature row is zeroed (0.9; the reference comment says 80%). */
  regionZeroProb?: number;
  /** IoU above which a box joins a selected box in the global-row mask (0.4). */
  overlapThreshold?: number;
}

export type ResolvedPreprocessOptions = Readonly<Required<PreprocessOptions>>;

export const PREPROCESS_DEFAULTS: ResolvedPreprocessOptions = Object.freeze({
  titleLen: 36,
  pvLen: 48,
  regions: 36,
  maxPairs: 10,
  featureDim: 2048,
  numClasses: 1601,
  titleMaskProb: 0.15,
  knowledgeMasking: 'reference',
  knowledgeMaskProb: 0.15,
  regionMaskProb: 0.15,
  regionZeroProb: 0.9,
  overlapThreshold: 0.4,
});

/** Defaults filled in and every value checked; the message names the option. */
export function resolvePreprocessOptions(opts: PreprocessOptions = {}): ResolvedPreprocessOptions {
  const o = { ...PREPROCESS_DEFAULTS, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) };
  const int = (k: keyof PreprocessOptions, min: number) => {
    const v = o[k] as number;
    if (!Number.isInteger(v) || v < min) throw new RangeError(`preprocess option ${k}=${v}: must be an integer >= ${min}`);
  };
  const prob = (k: keyof PreprocessOptions) => {
    const v = o[k] as number;
    if (!(v >= 0 && v <= 1)) throw new RangeError(`preprocess option ${k}=${v}: must be a probability in [0, 1]`);
  };
  int('titleLen', 2);
  int('pvLen', 2);
  int('regions', 1);
  int('maxPairs', 1);
  int('featureDim', 1);
  int('numClasses', 1);
  for (const k of ['titleMaskProb', 'knowledgeMaskProb', 'regionMaskProb', 'regionZeroProb', 'overlapThreshold'] as const) prob(k);
  if (!(o.knowledgeMasking in KNOWLEDGE_MASKING)) {
    throw new RangeError(`preprocess option knowledgeMasking=${o.knowledgeMasking}: must be one of ${Object.keys(KNOWLEDGE_MASKING).join(', ')}`);
  }
  return Object.freeze(o);
}

/** A record that cannot become a sample (inconsistent sizes); the pipeline rejects it. */
export class RecordError extends Error {
  override name = 'RecordError';
  constructor(
    readonly imageId: string,
    readonly reason: string,
  ) {
    super(`record ${imageId}: ${reason}`);
  }
}

/** One preprocessed item: the reference's per-sample tuple (3.3) without the constant fields. */
export interface Sample {
  imageId: string;
  /** [titleLen] */
  inputIds: Int32Array;
  inputMask: Int32Array;
  lmLabelIds: Int32Array;
  /** [pvLen] */
  inputIdsPv: Int32Array;
  inputMaskPv: Int32Array;
  lmLabelIdsPv: Int32Array;
  /** [regions, featureDim], masked rows zeroed, no global row */
  imageFeat: Float32Array;
  /** [regions, 5] x1/W, y1/H, x2/W, y2/H, area/(W*H) */
  imageLoc: Float32Array;
  /** [regions, numClasses] */
  imageTarget: Float32Array;
  /** [regions] 1 selected, -1 otherwise */
  imageLabel: Int32Array;
  /** [regions] 1 for real boxes */
  imageMask: Int32Array;
  /** [regions] 1 for selected boxes and every box overlapping one (IoU > threshold); global-row denominator */
  maskedLabel: Uint8Array;
  /** [maxPairs, 2] endpoint pairs on the [CLS]-prefixed knowledge ids, [0,0] padding */
  indexP: Int32Array;
  indexV: Int32Array;
  /** Pairs before padding (<= maxPairs). */
  numPairs: number;
}

/** Word-piece ids of a record's texts, without special tokens. */
export interface TextIds {
  title: number[];
  pv: number[];
}

/** Which real boxes region masking selected and which of those it zeroed (each length numBoxes). */
export interface RegionChoice {
  selected: Uint8Array;
  zeroed: Uint8Array;
}

/**
 * The knowledge string as tokenised (DS:529-530): `;` appended when the stripped string is
 * non-empty and does not end with one.
 */
export function knowledgeText(pv: string): string {
  const t = pv.trim();
  return t && !t.endsWith(';') ? pv + ';' : pv;
}

/** Tokenises a record's title and knowledge. */
export async function encodeRecord(tokenizer: K3mTokenizer, record: K3mRecord): Promise<TextIds> {
  const [title, pv] = await tokenizer.encodeBatch([record.caption, knowledgeText(record.pv)]);
  return { title: title!, pv: pv! };
}

/**
 * BERT title masking (`random_word`, DS:778-806): each token with `prob` is selected; then 80%
 * [MASK], 10% a uniform id in [0, vocabSize) (special ids included, as the reference), 10% kept.
 * Mutates `ids`; returns the labels (original id where selected, -1 elsewhere).
 */
export function maskTitle(ids: number[], vocab: VocabInfo, prob: number, rng: Rng): number[] {
  return ids.map((id, i) => {
    const u = rng.next();
    if (!(u < prob)) return -1;
    const v = u / prob;
    if (v < 0.8) ids[i] = vocab.ids.mask;
    else if (v < 0.9) ids[i] = rng.int(vocab.vocabSize);
    return id;
  });
}

const positionsOf = (ids: readonly number[], id: number) => ids.flatMap((x, i) => (x === id ? [i] : []));

/** Masks every position strictly between `c[k]` and `s[k]` (zip of the two lists). */
function maskSpans(ids: number[], labels: number[], c: number[], s: number[], mask: number, keep: (k: number) => boolean) {
  for (let k = 0; k < Math.min(c.length, s.length); k++) {
    if (!keep(k)) continue;
    for (let j = c[k]! + 1; j < s[k]!; j++) {
      labels[j] = ids[j]!;
      ids[j] = mask;
    }
  }
}

/**
 * Knowledge value masking on the truncated ids (no [CLS]). Mutates `ids`; returns the labels.
 * `reference` (`random_word_pv`, DS:838-867, deterministic): c = positions of `:`, s of `;`;
 * when one `;` is missing (last PV cut) the end counts as one; with more than one `;` the first
 * pair is dropped; the tokens strictly between each zipped (c, s) become [MASK]. Values holding
 * `:` or `;` misalign the spans exactly as in the reference: separators inside a span are masked
 * too, and a position two spans cover is labelled with [MASK] (the reference labels the current
 * id). Index pairs are then computed on the masked ids, also as the reference does.
 * `random`: the same spans without dropping the first, each kept with `prob` (needs `rng`).
 * `none`: nothing.
 */
export function maskKnowledge(ids: number[], vocab: VocabInfo, mode: KnowledgeMasking, prob = 0.15, rng?: Rng): number[] {
  const labels = ids.map(() => -1);
  const c = positionsOf(ids, vocab.ids.colon);
  const s = positionsOf(ids, vocab.ids.semicolon);
  if (s.length === c.length - 1) s.push(ids.length);
  if (mode === 'none') return labels;
  if (mode === 'reference') {
    if (s.length > 1) {
      c.shift();
      s.shift();
    }
    maskSpans(ids, labels, c, s, vocab.ids.mask, () => true);
  } else {
    if (!rng) throw new Error('random knowledge masking needs an rng');
    maskSpans(ids, labels, c, s, vocab.ids.mask, () => rng.next() < prob);
  }
  return labels;
}

/**
 * Property/value endpoint pairs (`index_pv`, DS:808-834) on the [CLS]-prefixed knowledge ids:
 * `[begin, :]` and `[: + 1, ;]`, begin = 1 then the position after the previous `;`. With one
 * `;` fewer than `:` the truncated last PV is left out; any other count mismatch gives no pairs.
 * At most `maxPairs` (the first ones) are kept.
 */
export function knowledgePairs(idsWithCls: readonly number[], vocab: VocabInfo, maxPairs: number): { p: [number, number][]; v: [number, number][] } {
  let c = positionsOf(idsWithCls, vocab.ids.colon);
  let s = positionsOf(idsWithCls, vocab.ids.semicolon);
  if (s.length === c.length - 1) c.pop();
  else if (s.length !== c.length) c = s = [];
  const p: [number, number][] = [];
  const v: [number, number][] = [];
  let begin = 1;
  for (let k = 0; k < Math.min(c.length, maxPairs); k++) {
    p.push([begin, c[k]!]);
    v.push([c[k]! + 1, s[k]!]);
    begin = s[k]! + 1;
  }
  return { p, v };
}

const f = Math.fround;

/** IoU of every pair of the first `n` boxes with the "+1" pixel convention (DS:40-77), in float32. [n, n] */
export function boxOverlaps(boxes: Float32Array, n: number): Float32Array {
  const area = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const b = i * 4;
    area[i] = f(f(f(boxes[b + 2]! - boxes[b]!) + 1) * f(f(boxes[b + 3]! - boxes[b + 1]!) + 1));
  }
  const out = new Float32Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const a = i * 4;
      const b = j * 4;
      let iw = f(f(Math.min(boxes[a + 2]!, boxes[b + 2]!) - Math.max(boxes[a]!, boxes[b]!)) + 1);
      let ih = f(f(Math.min(boxes[a + 3]!, boxes[b + 3]!) - Math.max(boxes[a + 1]!, boxes[b + 1]!)) + 1);
      if (iw < 0) iw = 0;
      if (ih < 0) ih = 0;
      const inter = f(iw * ih);
      const ua = f(f(area[i]! + area[j]!) - inter);
      out[i * n + j] = f(inter / ua);
    }
  }
  return out;
}

/**
 * Region masking draws (`random_region`, DS:916-965): each box with `regionMaskProb` is
 * selected, a selected one zeroed with `regionZeroProb`.
 */
export function drawRegionChoice(n: number, rng: Rng, opts: Pick<ResolvedPreprocessOptions, 'regionMaskProb' | 'regionZeroProb'>): RegionChoice {
  const selected = new Uint8Array(n);
  const zeroed = new Uint8Array(n);
  const p = opts.regionMaskProb;
  for (let i = 0; i < n; i++) {
    const u = rng.next();
    if (u < p) {
      selected[i] = 1;
      zeroed[i] = u / p < opts.regionZeroProb ? 1 : 0;
    }
  }
  return { selected, zeroed };
}

function padded(values: readonly number[], len: number, fill: number): Int32Array {
  const out = new Int32Array(len).fill(fill);
  out.set(values.slice(0, len));
  return out;
}

function textSide(ids: number[], labels: number[], vocab: VocabInfo, len: number) {
  const withSpecials = [vocab.ids.cls, ...ids, vocab.ids.sep];
  return {
    ids: padded(withSpecials, len, vocab.ids.pad),
    mask: padded(withSpecials.map(() => 1), len, 0),
    labels: padded([-1, ...labels, -1], len, -1),
  };
}

/**
 * Why `record` cannot become a sample with `opts` (sizes disagree), or null. Only records with
 * boxes are checked: an image-less record needs no arrays.
 */
export function recordProblem(record: K3mRecord, opts: ResolvedPreprocessOptions): string | null {
  const { featureDim: D, numClasses: C } = opts;
  const n = Math.min(record.numBoxes, opts.regions);
  if (!(Number.isInteger(record.numBoxes) && record.numBoxes >= 0)) return `numBoxes ${record.numBoxes}`;
  if (n === 0) return null;
  if (record.featureDim !== D) return `feature width ${record.featureDim}, expected ${D}`;
  if (record.numClasses !== C) {
    return `${record.numClasses} detector classes, expected ${C}${record.numClasses === 0 ? ' (written with --no-cls-prob: the masked-region target needs them)' : ''}`;
  }
  if (record.features.length < n * D || record.clsProb.length < n * C || record.boxes.length < n * 4) return `arrays shorter than ${n} boxes`;
  if (!(record.imageW > 0 && record.imageH > 0)) return `image size ${record.imageW}x${record.imageH} with ${n} boxes`;
  return null;
}

/** The image half of a sample, given the masking choice (injectable to reproduce a recorded one). */
export function imageSide(record: K3mRecord, choice: RegionChoice, opts: ResolvedPreprocessOptions) {
  const { regions: R, featureDim: D, numClasses: C } = opts;
  const n = Math.min(record.numBoxes, R);
  const fail = (reason: string) => new RecordError(record.imageId, reason);
  const problem = recordProblem(record, opts);
  if (problem) throw fail(problem);
  if (choice.selected.length < n || choice.zeroed.length < n) throw fail(`region choice covers fewer than ${n} boxes`);
  const imageFeat = new Float32Array(R * D);
  imageFeat.set(record.features.subarray(0, n * D));
  const imageTarget = new Float32Array(R * C);
  imageTarget.set(record.clsProb.subarray(0, n * C));
  const imageLoc = new Float32Array(R * 5);
  const W = record.imageW;
  const H = record.imageH;
  const wh = f(W * H);
  for (let i = 0; i < n; i++) {
    const [x1, y1, x2, y2] = record.boxes.subarray(i * 4, i * 4 + 4) as unknown as [number, number, number, number];
    imageLoc.set([f(x1 / W), f(y1 / H), f(x2 / W), f(y2 / H), f(f(f(y2 - y1) * f(x2 - x1)) / wh)], i * 5);
  }
  const overlaps = boxOverlaps(record.boxes, n);
  const thr = f(opts.overlapThreshold);
  const imageLabel = new Int32Array(R).fill(-1);
  const imageMask = new Int32Array(R);
  const maskedLabel = new Uint8Array(R);
  for (let i = 0; i < n; i++) {
    imageMask[i] = 1;
    if (!choice.selected[i]) continue;
    imageLabel[i] = 1;
    if (choice.zeroed[i]) imageFeat.fill(0, i * D, (i + 1) * D);
    for (let j = 0; j < n; j++) if (overlaps[i * n + j]! > thr) maskedLabel[j] = 1;
  }
  return { imageFeat, imageLoc, imageTarget, imageLabel, imageMask, maskedLabel };
}

/**
 * One record to one sample. Random draws, in this order from `rng`: title masking, knowledge
 * masking (random mode only), region masking; `regions` replaces the region draw.
 * @example
 * const s = preprocess(record, await encodeRecord(tok, record), tok, resolvePreprocessOptions(), Rng.from(42, 0));
 * s.inputIds[0]; // 101 ([CLS])
 */
export function preprocess(
  record: K3mRecord,
  text: TextIds,
  vocab: VocabInfo,
  opts: ResolvedPreprocessOptions,
  rng: Rng,
  inject: { regions?: RegionChoice } = {},
): Sample {
  const title = text.title.slice(0, opts.titleLen - 2);
  const pv = text.pv.slice(0, opts.pvLen - 2);
  const titleLabels = opts.titleMaskProb > 0 ? maskTitle(title, vocab, opts.titleMaskProb, rng) : title.map(() => -1);
  const pvLabels = maskKnowledge(pv, vocab, opts.knowledgeMasking, opts.knowledgeMaskProb, rng);
  const n = Math.min(record.numBoxes, opts.regions);
  const choice = inject.regions ?? drawRegionChoice(n, rng, opts);
  const t = textSide(title, titleLabels, vocab, opts.titleLen);
  const k = textSide(pv, pvLabels, vocab, opts.pvLen);
  const pairs = knowledgePairs([vocab.ids.cls, ...pv], vocab, opts.maxPairs);
  return {
    imageId: record.imageId,
    inputIds: t.ids,
    inputMask: t.mask,
    lmLabelIds: t.labels,
    inputIdsPv: k.ids,
    inputMaskPv: k.mask,
    lmLabelIdsPv: k.labels,
    ...imageSide(record, choice, opts),
    indexP: padded(pairs.p.flat(), opts.maxPairs * 2, 0),
    indexV: padded(pairs.v.flat(), opts.maxPairs * 2, 0),
    numPairs: pairs.p.length,
  };
}

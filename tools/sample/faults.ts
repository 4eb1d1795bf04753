/**
 * @file The faults a real dump has, planted at fixed rates, and `faults.json`, the record of
 * exactly what was planted (kinds, counts, files, lines, ids) that tests compare a stage's
 * report against.
 *
 * Every faulty line carries exactly one fault, and line 1 of each file is always clean, so
 * the expected outcome of each line is unambiguous:
 * - `rejected`: the line must be rejected (reason: field count, duplicate id, invalid UTF-8);
 * - `image-missing`: the item is kept without an image (file missing, or not a decodable JPEG);
 * - `kept`: the item is kept with the flaw counted or tolerated (placeholder value, a property
 *   repeated with another value, a malformed pair that is dropped, empty title, CRLF line end).
 */
import { readFile } from 'node:fs/promises';
import type { Rng } from '@k3m-kit/core';

export type FaultEffect = 'rejected' | 'image-missing' | 'kept';

export interface FaultKind {
  /** Fraction of a file's lines that carry this fault (rounded half up). */
  readonly rate: number;
  /** At least this many per file, so even a tiny sample shows every fault. */
  readonly min: number;
  readonly effect: FaultEffect;
  readonly what: string;
}

export const FAULT_KINDS = Object.freeze({
  'image-not-found': { rate: 0.03, min: 1, effect: 'image-missing', what: 'image reference to a file that does not exist' },
  'image-truncated': { rate: 0.01, min: 1, effect: 'image-missing', what: 'JPEG cut off after about half its bytes' },
  'image-not-image': { rate: 0.01, min: 1, effect: 'image-missing', what: 'an HTML error page saved as .jpg' },
  'placeholder-value': { rate: 0.02, min: 1, effect: 'kept', what: 'one pair whose value is the placeholder 请填写' },
  'repeated-property': { rate: 0.02, min: 1, effect: 'kept', what: 'one property appears twice with different values' },
  'malformed-pair': { rate: 0.02, min: 1, effect: 'kept', what: 'one extra pair without the #:# separator' },
  'empty-title': { rate: 0.005, min: 1, effect: 'kept', what: 'title field is empty' },
  crlf: { rate: 0.02, min: 1, effect: 'kept', what: 'line ends with CRLF' },
  'duplicate-id': { rate: 0.01, min: 1, effect: 'rejected', what: 'reuses the id of an earlier clean line of the same file' },
  'four-fields': { rate: 0.005, min: 1, effect: 'rejected', what: 'category field missing (4 TAB-separated fields)' },
  'six-fields': { rate: 0.005, min: 1, effect: 'rejected', what: 'a TAB inside the title or a trailing extra field (6 fields)' },
  'invalid-utf8': { rate: 0, min: 1, effect: 'rejected', what: 'GBK bytes inside the title (invalid UTF-8)' },
} satisfies Record<string, FaultKind>);
export type FaultKindName = keyof typeof FAULT_KINDS;
export const FAULT_KIND_NAMES = Object.keys(FAULT_KINDS) as FaultKindName[];

/** The placeholder sellers leave in a required field. */
export const PLACEHOLDER = '请填写';

/** How many lines of an `n`-line file carry `kind`. */
export function faultCount(kind: FaultKindName, n: number): number {
  const k: FaultKind = FAULT_KINDS[kind];
  return Math.max(k.min, Math.floor(k.rate * n + 0.5));
}

/** Fewest lines a file needs to hold every fault plus one clean first line. */
export function minimumLines(): number {
  let n = 1;
  while (FAULT_KIND_NAMES.reduce((s, k) => s + faultCount(k, n), 0) > n - 1) n++;
  return n;
}

export interface FaultPlan {
  /** Line index (0-based) to fault kind; absent = clean. */
  kinds: Map<number, FaultKindName>;
  /** For `duplicate-id` lines: the index of the earlier clean line whose id is reused. */
  duplicateOf: Map<number, number>;
}

/** Chooses which lines of an `n`-line file carry which fault. */
export function planFaults(rng: Rng, n: number): FaultPlan {
  const slots = rng.shuffle(Array.from({ length: n - 1 }, (_, i) => i + 1));
  const kinds = new Map<number, FaultKindName>();
  let next = 0;
  for (const kind of FAULT_KIND_NAMES) {
    for (let c = faultCount(kind, n); c > 0; c--) kinds.set(slots[next++]!, kind);
  }
  const duplicateOf = new Map<number, number>();
  for (const [i, kind] of [...kinds.entries()].sort((a, b) => a[0] - b[0])) {
    if (kind !== 'duplicate-id') continue;
    const clean: number[] = [];
    for (let j = 0; j < i; j++) if (!kinds.has(j)) clean.push(j);
    duplicateOf.set(i, rng.pick(clean)); // line 0 is always clean, so `clean` is never empty
  }
  return { kinds, duplicateOf };
}

/** One planted fault. */
export interface FaultRecord {
  kind: FaultKindName;
  /** TSV file name, relative to the sample directory. */
  file: string;
  /** 1-based line number. */
  line: number;
  /** Item id as written on the line. */
  id: string;
  /** The image reference as written, for image faults. */
  image?: string;
  /** What exactly is wrong (the property, the form of the bad pair, the reused line). */
  detail?: string;
}

export interface SampleFile {
  file: string;
  split: 'train' | 'val';
  lines: number;
  /** Whether the file starts with a UTF-8 byte-order mark. */
  bom: boolean;
  counts: Record<FaultKindName, number>;
}

/** The expected outcome of ingesting the whole sample, derived from the plan. */
export interface SampleExpectation {
  /** Lines in all files (= records a stage reads). */
  lines: number;
  rejected: number;
  kept: number;
  imageOk: number;
  imageMissing: number;
  /** Kept items whose image is missing, by fault kind. */
  imageMissingByKind: Partial<Record<FaultKindName, number>>;
  rejectedByKind: Partial<Record<FaultKindName, number>>;
  emptyTitles: number;
  placeholderPairs: number;
  repeatedProperties: number;
  malformedPairs: number;
  crlfLines: number;
}

/** `faults.json`, beside the TSVs. */
export interface FaultsFile {
  version: 1;
  seed: number;
  rates: Record<FaultKindName, number>;
  files: SampleFile[];
  /** Totals over all files. */
  counts: Record<FaultKindName, number>;
  expected: SampleExpectation;
  /** Every planted fault, by file then line. */
  faults: FaultRecord[];
}

export const FAULTS_FILE = 'faults.json';

/** Totals and expected outcome from the per-file records. */
export function summarise(seed: number, files: SampleFile[], faults: FaultRecord[]): FaultsFile {
  const counts = Object.fromEntries(FAULT_KIND_NAMES.map((k) => [k, 0])) as Record<FaultKindName, number>;
  for (const f of faults) counts[f.kind]++;
  const lines = files.reduce((s, f) => s + f.lines, 0);
  const byEffect = (e: FaultEffect) =>
    Object.fromEntries(FAULT_KIND_NAMES.filter((k) => FAULT_KINDS[k].effect === e).map((k) => [k, counts[k]]));
  const sum = (o: Record<string, number>) => Object.values(o).reduce((s, x) => s + x, 0);
  const rejectedByKind = byEffect('rejected');
  const imageMissingByKind = byEffect('image-missing');
  const rejected = sum(rejectedByKind);
  const imageMissing = sum(imageMissingByKind);
  return {
    version: 1,
    seed,
    rates: Object.fromEntries(FAULT_KIND_NAMES.map((k) => [k, FAULT_KINDS[k].rate])) as Record<FaultKindName, number>,
    files,
    counts,
    expected: {
      lines,
      rejected,
      kept: lines - rejected,
      imageOk: lines - rejected - imageMissing,
      imageMissing,
      imageMissingByKind,
      rejectedByKind,
      emptyTitles: counts['empty-title'],
      placeholderPairs: counts['placeholder-value'],
      repeatedProperties: counts['repeated-property'],
      malformedPairs: counts['malformed-pair'],
      crlfLines: counts.crlf,
    },
    faults,
  };
}

/** Reads `<dir>/faults.json`. */
export async function readFaults(dir: string): Promise<FaultsFile> {
  return JSON.parse(await readFile(`${dir}/${FAULTS_FILE}`, 'utf8')) as FaultsFile;
}

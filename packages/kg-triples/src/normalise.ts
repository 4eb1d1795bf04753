/**
 * @file The cleaning steps between parsed pairs and triples, each switchable and counted
 * (issue 3, build step 3). Steps run in this fixed order, per item:
 *
 *   parse -> nfkc -> whitespace -> empty -> placeholders -> separators -> dedupe
 *
 * Order matters: NFKC turns full-width `：`/`；` into ASCII, so the separator rewrite runs
 * after it; placeholders and duplicates are compared on normalised text. Repeated properties
 * with different values are never merged: each stays its own triple.
 */
import { hasSeparator, rewriteSeparators, type Pair, type ParsedPair } from './codecs/pv-string.ts';

/** Placeholder values dropped by default ("please fill in", "please choose", ...). */
export const DEFAULT_PLACEHOLDERS: readonly string[] = Object.freeze([
  '请填写',
  '请选择',
  '请输入',
  'null',
  'NULL',
  'None',
  'undefined',
  'NaN',
  'N/A',
]);

export interface NormaliseOptions {
  /** Unicode NFKC (full-width letters, digits and punctuation to half-width). */
  nfkc: boolean;
  /** Trim, and collapse runs of white space to one space. */
  whitespace: boolean;
  /** Drop pairs whose property or value is empty. */
  dropEmpty: boolean;
  /** Drop pairs whose value is one of `placeholders`. */
  dropPlaceholders: boolean;
  placeholders: readonly string[];
  /** Rewrite `:`/`;`/`#` inside text to full-width; when off, such pairs are dropped instead. */
  rewriteSeparators: boolean;
  /** Drop exact duplicate pairs within one item. */
  dedupe: boolean;
}

export const DEFAULT_NORMALISE: Readonly<NormaliseOptions> = Object.freeze({
  nfkc: true,
  whitespace: true,
  dropEmpty: true,
  dropPlaceholders: true,
  placeholders: DEFAULT_PLACEHOLDERS,
  rewriteSeparators: true,
  dedupe: true,
});

export const STEPS = ['parse', 'nfkc', 'whitespace', 'empty', 'placeholders', 'separators', 'dedupe'] as const;
export type StepName = (typeof STEPS)[number];

/** Why a pair was dropped; stable strings used in the reject log and report. */
export const DROP_REASONS = Object.freeze({
  'no-separator': 'a piece of the knowledge string has no property separator',
  'empty-property': 'the property is empty',
  'empty-value': 'the value is empty',
  placeholder: 'the value is a placeholder',
  'separator-in-text': 'the property or value contains : ; or # (separator rewrite is off)',
  'duplicate-pair': 'exact duplicate of an earlier pair of the same item',
  'rare-relation': 'the property occurs fewer than --min-relation-freq times',
  'rare-entity': 'the value occurs fewer than --min-entity-freq times',
});
export type DropReason = keyof typeof DROP_REASONS;

/** Pairs before and after one step. `in - dropped = out`. */
export interface StepStats {
  step: StepName;
  enabled: boolean;
  in: number;
  /** Pairs whose text the step rewrote. */
  changed: number;
  dropped: number;
  out: number;
}

export interface DroppedPair {
  pair: Pair;
  reason: DropReason;
}

export interface CleanResult {
  kept: Pair[];
  dropped: DroppedPair[];
}

function enabledOf(o: NormaliseOptions, step: StepName): boolean {
  switch (step) {
    case 'parse':
      return true;
    case 'nfkc':
      return o.nfkc;
    case 'whitespace':
      return o.whitespace;
    case 'empty':
      return o.dropEmpty;
    case 'placeholders':
      return o.dropPlaceholders;
    case 'separators':
      return true; // off means "drop" rather than "rewrite": the text form must stay parseable
    case 'dedupe':
      return o.dedupe;
  }
}

const WS = /\s+/gu;

/**
 * Applies the steps to each item's pairs and keeps per-step counts across items.
 * @example
 * const c = new Cleaner(DEFAULT_NORMALISE);
 * c.clean(parsePv('品名:请填写;颜色:红')).kept // [{p:'颜色',v:'红'}]
 */
export class Cleaner {
  readonly steps: StepStats[];
  private readonly placeholders: Set<string>;

  constructor(readonly options: NormaliseOptions) {
    this.steps = STEPS.map((step) => ({ step, enabled: enabledOf(options, step), in: 0, changed: 0, dropped: 0, out: 0 }));
    // The list is compared with values after nfkc/whitespace, so it goes through them too.
    this.placeholders = new Set(options.placeholders.map((s) => this.text(s)));
  }

  private text(s: string): string {
    if (this.options.nfkc) s = s.normalize('NFKC');
    if (this.options.whitespace) s = s.replace(WS, ' ').trim();
    return s;
  }

  clean(parsed: readonly ParsedPair[]): CleanResult {
    const o = this.options;
    const [sParse, sNfkc, sWs, sEmpty, sPh, sSep, sDup] = this.steps as [StepStats, StepStats, StepStats, StepStats, StepStats, StepStats, StepStats];
    const kept: Pair[] = [];
    const dropped: DroppedPair[] = [];
    const seen = new Set<string>();
    const drop = (s: StepStats, pair: Pair, reason: DropReason) => {
      s.dropped++;
      dropped.push({ pair, reason });
    };
    for (const pp of parsed) {
      sParse.in++;
      if (pp.malformed) {
        drop(sParse, { p: pp.p, v: pp.v }, 'no-separator');
        continue;
      }
      let { p, v } = pp;

      sNfkc.in++;
      if (o.nfkc) {
        const np = p.normalize('NFKC');
        const nv = v.normalize('NFKC');
        if (np !== p || nv !== v) sNfkc.changed++;
        p = np;
        v = nv;
      }

      sWs.in++;
      if (o.whitespace) {
        const np = p.replace(WS, ' ').trim();
        const nv = v.replace(WS, ' ').trim();
        if (np !== p || nv !== v) sWs.changed++;
        p = np;
        v = nv;
      }

      sEmpty.in++;
      if (o.dropEmpty && (p === '' || v === '')) {
        drop(sEmpty, { p, v }, p === '' ? 'empty-property' : 'empty-value');
        continue;
      }

      sPh.in++;
      if (o.dropPlaceholders && this.placeholders.has(v)) {
        drop(sPh, { p, v }, 'placeholder');
        continue;
      }

      sSep.in++;
      if (hasSeparator(p) || hasSeparator(v)) {
        if (!o.rewriteSeparators) {
          drop(sSep, { p, v }, 'separator-in-text');
          continue;
        }
        p = rewriteSeparators(p);
        v = rewriteSeparators(v);
        sSep.changed++;
      }

      sDup.in++;
      if (o.dedupe) {
        const key = `${p}\u0000${v}`;
        if (seen.has(key)) {
          drop(sDup, { p, v }, 'duplicate-pair');
          continue;
        }
        seen.add(key);
      }
      kept.push({ p, v });
    }
    for (const s of this.steps) s.out = s.in - s.dropped;
    return { kept, dropped };
  }
}

/** Sums per-step counts from several runs (segments) into `into`. */
export function addStepStats(into: StepStats[], from: readonly StepStats[]): void {
  for (let i = 0; i < into.length; i++) {
    const a = into[i]!;
    const b = from[i]!;
    a.in += b.in;
    a.changed += b.changed;
    a.dropped += b.dropped;
    a.out += b.out;
  }
}

/**
 * @file The stage report (`reports/kg-triples.json`) and its readable table: sums of the
 * segments' statistics plus what the merge measured. `in` counts pairs read (by the segment
 * passes, as rows stream in), `written` triples kept in the knowledge graph (by the graph
 * writer), `rejected` pairs dropped (cleaning plus thresholds, as each reject line is written);
 * `reconciles` compares `in` with `written + rejected` (issue 3, build step 7).
 */
import { formatTable, type StageReportBase, type TableRow, type Shard } from '@k3m-kit/core';
import type { PartMarker } from './codecs/part.ts';
import { STEPS, type StepStats } from './normalise.ts';
import type { MergeOptions, SegmentOptions } from './options.ts';

export const STAGE = 'kg-triples';

/** Pairs per item: summary and the exact histogram (pairs -> items). */
export interface Distribution {
  items: number;
  min: number;
  max: number;
  mean: number;
  median: number;
  histogram: Record<string, number>;
}

/** A step row in the report: the cleaning steps plus `thresholds` from the merge. */
export interface ReportStep extends Omit<StepStats, 'step'> {
  step: StepStats['step'] | 'thresholds';
}

/** What the segments of a run (or shard) sum to. */
export interface SegmentSummary {
  segments: number;
  items: number;
  itemsWithoutKnowledge: number;
  itemsEmptyAfterCleaning: number;
  pairsIn: number;
  pairsCleaned: number;
  steps: ReportStep[];
  repeatedProperties: { items: number; triples: number };
  knowledge: { items: number; maxPairs: number; itemsTruncated: number; pairsTruncated: number };
  pairsPerItem: { before: Distribution; after: Distribution };
}

/** The report of a merged run: the whole knowledge graph. */
export interface KgReport extends StageReportBase, SegmentSummary {
  merged: true;
  /** Identifies the parts and merge options; an unchanged rerun skips the merge. */
  fingerprint: string;
  options: SegmentOptions & MergeOptions;
  itemsWithoutTriples: number;
  relations: { seen: number; kept: number; droppedByThreshold: number };
  entities: { values: { seen: number; kept: number; droppedByThreshold: number }; items: number; total: number };
  triples: { train: number; valid: number; test: number; total: number };
  topProperties: { property: string; count: number }[];
}

/** The report of a shard that left other segments to other shards (no merge yet). */
export interface KgShardReport extends StageReportBase, SegmentSummary {
  merged: false;
  shard: string;
  segmentsProcessed: number;
  segmentsSkipped: number;
  /** Segments of the manifest without a current part; the merge runs once this is empty. */
  segmentsPending: number[];
}

function distribution(h: Map<number, number>): Distribution {
  const keys = [...h.keys()].sort((a, b) => a - b);
  let items = 0;
  let sum = 0;
  for (const k of keys) {
    items += h.get(k)!;
    sum += k * h.get(k)!;
  }
  let median = 0;
  let seen = 0;
  for (const k of keys) {
    seen += h.get(k)!;
    if (seen * 2 >= items) {
      median = k;
      break;
    }
  }
  return {
    items,
    min: keys[0] ?? 0,
    max: keys[keys.length - 1] ?? 0,
    mean: items ? sum / items : 0,
    median,
    histogram: Object.fromEntries(keys.map((k) => [String(k), h.get(k)!])),
  };
}

function addHistogram(into: Map<number, number>, from: Record<string, number>): void {
  for (const [k, v] of Object.entries(from)) into.set(Number(k), (into.get(Number(k)) ?? 0) + v);
}

/** Sums part markers (all from the same options). */
export function summarise(markers: readonly PartMarker[], maxPairs: number): SegmentSummary {
  const steps: StepStats[] = STEPS.map((step, i) => ({
    step,
    enabled: markers[0]?.stats.steps[i]?.enabled ?? true,
    in: 0,
    changed: 0,
    dropped: 0,
    out: 0,
  }));
  const t = { items: 0, itemsWithoutKnowledge: 0, itemsEmptyAfterCleaning: 0, pairsIn: 0, pairsOut: 0, ri: 0, rt: 0, it: 0, pt: 0 };
  const hIn = new Map<number, number>();
  const hOut = new Map<number, number>();
  for (const { stats: s } of markers) {
    t.items += s.items;
    t.itemsWithoutKnowledge += s.itemsWithoutKnowledge;
    t.itemsEmptyAfterCleaning += s.itemsEmptyAfterCleaning;
    t.pairsIn += s.pairsIn;
    t.pairsOut += s.pairsOut;
    t.ri += s.itemsWithRepeatedProperties;
    t.rt += s.repeatedPropertyTriples;
    t.it += s.itemsTruncated;
    t.pt += s.pairsTruncated;
    s.steps.forEach((st, i) => {
      const a = steps[i]!;
      a.in += st.in;
      a.changed += st.changed;
      a.dropped += st.dropped;
      a.out += st.out;
    });
    addHistogram(hIn, s.pairsPerItemIn);
    addHistogram(hOut, s.pairsPerItemOut);
  }
  return {
    segments: markers.length,
    items: t.items,
    itemsWithoutKnowledge: t.itemsWithoutKnowledge,
    itemsEmptyAfterCleaning: t.itemsEmptyAfterCleaning,
    pairsIn: t.pairsIn,
    pairsCleaned: t.pairsOut,
    steps,
    repeatedProperties: { items: t.ri, triples: t.rt },
    knowledge: { items: t.items, maxPairs, itemsTruncated: t.it, pairsTruncated: t.pt },
    pairsPerItem: { before: distribution(hIn), after: distribution(hOut) },
  };
}

const BUCKETS: [string, number, number][] = [
  ['0', 0, 0],
  ['1', 1, 1],
  ['2', 2, 2],
  ['3-5', 3, 5],
  ['6-10', 6, 10],
  ['11-20', 11, 20],
  ['21-50', 21, 50],
  ['51-100', 51, 100],
  ['>100', 101, Infinity],
];

function bucketRows(prefix: string, d: Distribution): TableRow[] {
  const rows: TableRow[] = [];
  for (const [label, lo, hi] of BUCKETS) {
    let n = 0;
    for (const [k, v] of Object.entries(d.histogram)) if (Number(k) >= lo && Number(k) <= hi) n += v;
    if (n) rows.push([`${prefix} ${label}`, n]);
  }
  return rows;
}

function summaryRows(r: SegmentSummary): TableRow[] {
  const rows: TableRow[] = [
    ['segments', r.segments],
    ['items', r.items],
    ['items without knowledge', r.itemsWithoutKnowledge],
    ['items empty after cleaning', r.itemsEmptyAfterCleaning],
  ];
  for (const s of r.steps) {
    const note = s.enabled ? '' : ' (off)';
    rows.push([`pairs after ${s.step}${note}`, s.out]);
    if (s.dropped) rows.push([`  dropped by ${s.step}`, s.dropped]);
    if (s.changed) rows.push([`  changed by ${s.step}`, s.changed]);
  }
  rows.push(
    ['items with repeated properties', r.repeatedProperties.items],
    ['repeated-property triples kept', r.repeatedProperties.triples],
    [`knowledge strings cut at ${r.knowledge.maxPairs} pairs`, r.knowledge.itemsTruncated],
    ['pairs/item before: mean', r.pairsPerItem.before.mean],
    ['pairs/item before: median', r.pairsPerItem.before.median],
    ['pairs/item before: max', r.pairsPerItem.before.max],
    ['pairs/item after: mean', r.pairsPerItem.after.mean],
    ['pairs/item after: median', r.pairsPerItem.after.median],
    ['pairs/item after: max', r.pairsPerItem.after.max],
    ...bucketRows('items with pairs', r.pairsPerItem.after),
  );
  return rows;
}

/** The readable table of a merged run. */
export function reportTable(r: KgReport): string {
  const rows: TableRow[] = [
    ['pairs in', r.in],
    ['triples kept', r.written],
    ['pairs rejected', r.rejected],
    ...Object.entries(r.rejectedByReason).map(([k, v]) => [`  ${k}`, v] as TableRow),
    ['reconciles', r.reconciles],
    ...summaryRows(r),
    ['items without triples', r.itemsWithoutTriples],
    ['relations kept / seen', `${r.relations.kept} / ${r.relations.seen}`],
    ['value entities kept / seen', `${r.entities.values.kept} / ${r.entities.values.seen}`],
    ['item entities', r.entities.items],
    ['entities', r.entities.total],
    ['train / valid / test', `${r.triples.train} / ${r.triples.valid} / ${r.triples.test}`],
    ...r.topProperties.map((t, i) => [`top property ${i + 1}: ${t.property}`, t.count] as TableRow),
    ['seconds', r.seconds],
  ];
  return formatTable('kg-triples', rows);
}

/** The readable table of a shard run. */
export function shardReportTable(r: KgShardReport): string {
  const rows: TableRow[] = [
    ['shard', r.shard],
    ['pairs in', r.in],
    ['pairs cleaned', r.written],
    ['pairs rejected', r.rejected],
    ...Object.entries(r.rejectedByReason).map(([k, v]) => [`  ${k}`, v] as TableRow),
    ['reconciles', r.reconciles],
    ['segments processed', r.segmentsProcessed],
    ['segments skipped (done)', r.segmentsSkipped],
    ['segments pending (other shards)', r.segmentsPending.length],
    ...summaryRows(r),
    ['seconds', r.seconds],
  ];
  return formatTable('kg-triples (shard)', rows);
}

export function shardLabel(s: Shard): string {
  return `${s.index}/${s.count}`;
}

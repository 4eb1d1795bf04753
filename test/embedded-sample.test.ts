/**
 * The embedded sample through raw-ingest build-data: every fault the generator planted
 * (tools/sample, faults.json) must come out of the stage as the count and reason it stands for,
 * and the counts must reconcile.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildData, readItems, type BuildDataReport, type SegmentRow } from '@k3m-kit/raw-ingest';
import { FAULT_KIND_NAMES, PLACEHOLDER, makeSample, type FaultKindName, type FaultsFile } from '@k3m-kit/tools';

/** The reject reason build-data gives each rejecting fault. */
const REJECT_REASON: Partial<Record<FaultKindName, string>> = {
  'four-fields': 'field-count',
  'six-fields': 'field-count',
  'duplicate-id': 'duplicate-id',
  'invalid-utf8': 'invalid-utf8',
};
/** The image-missing reason build-data gives each image fault. */
const MISSING_REASON: Partial<Record<FaultKindName, string>> = {
  'image-not-found': 'not-found',
  'image-truncated': 'corrupt-image',
  'image-not-image': 'not-an-image',
};

let root: string;
let raw: string;
let work: string;
let faults: FaultsFile;
let report: BuildDataReport;
let items: (SegmentRow & { split: string })[];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'k3m-embedded-sample-'));
  raw = join(root, 'raw');
  work = join(root, 'work');
  faults = await makeSample({ out: raw });
  await buildData({ workDir: work, input: [`${join(raw, 'train.tsv')}:train`, `${join(raw, 'valid.tsv')}:val`], quiet: true });
  report = JSON.parse(await readFile(join(work, 'reports', 'build-data.json'), 'utf8')) as BuildDataReport;
  items = [];
  for await (const row of readItems(work)) items.push(row);
});

afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

/** Sums planted counts per mapped name. */
function byMapped(map: Partial<Record<FaultKindName, string>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of FAULT_KIND_NAMES) {
    const name = map[k];
    if (name && faults.counts[k] > 0) out[name] = (out[name] ?? 0) + faults.counts[k];
  }
  return out;
}

const plantedIds = (kind: FaultKindName) => new Set(faults.faults.filter((f) => f.kind === kind).map((f) => f.id));

describe('build-data on the embedded sample', () => {
  it('reads every line and reconciles: in = written + rejected', () => {
    const e = faults.expected;
    expect(report.in).toBe(e.lines);
    expect(report.written).toBe(e.kept);
    expect(report.rejected).toBe(e.rejected);
    expect(report.reconciles).toBe(true);
    expect(report.in).toBe(report.written + report.rejected);
    expect(items).toHaveLength(e.kept);
  });

  it('rejects exactly the planted bad lines, by reason', () => {
    expect(report.rejectedByReason).toEqual(byMapped(REJECT_REASON));
  });

  it('names each planted bad line in rejects/build-data.jsonl with its file, line and reason', async () => {
    const text = await readFile(join(work, 'rejects', 'build-data.jsonl'), 'utf8');
    const logged = text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { source: string; line: number; reason: string })
      .map((r) => `${basename(r.source)}:${r.line}:${r.reason}`)
      .sort();
    const planted = faults.faults.filter((f) => REJECT_REASON[f.kind]).map((f) => `${f.file}:${f.line}:${REJECT_REASON[f.kind]}`).sort();
    expect(logged).toEqual(planted);
  });

  it('keeps items whose image is missing or corrupt, marked with the planted reason', () => {
    expect(report.images.ok).toBe(faults.expected.imageOk);
    expect(report.images.missing).toBe(faults.expected.imageMissing);
    expect(report.images.missingByReason).toEqual(byMapped(MISSING_REASON));
    expect(report.images.dropped).toBe(0);
    const missing = new Set(items.filter((r) => r.pic === '').map((r) => r.itemId));
    const planted = new Set(faults.faults.filter((f) => MISSING_REASON[f.kind]).map((f) => f.id));
    expect(missing).toEqual(planted);
  });

  it('drops and counts the malformed pairs, keeping their items', () => {
    expect(report.malformedPairsDropped).toBe(faults.expected.malformedPairs);
    expect(report.itemsWithMalformedPairs).toBe(faults.expected.malformedPairs);
    const ids = plantedIds('malformed-pair');
    const kept = items.filter((r) => ids.has(r.itemId));
    expect(kept).toHaveLength(ids.size);
    for (const r of kept) for (const pair of r.pv.split(';')) expect(pair.split(':')).toHaveLength(2);
  });

  it('keeps empty titles (counted), placeholder values and repeated properties as data', () => {
    expect(report.emptyTitle).toBe(faults.expected.emptyTitles);
    expect(report.emptyKnowledge).toBe(0);
    const byId = new Map(items.map((r) => [r.itemId, r]));
    for (const id of plantedIds('empty-title')) expect(byId.get(id)!.title).toBe('');
    for (const f of faults.faults.filter((x) => x.kind === 'placeholder-value')) {
      expect(byId.get(f.id)!.pv.split(';')).toContain(`${f.detail}:${PLACEHOLDER}`);
    }
    for (const f of faults.faults.filter((x) => x.kind === 'repeated-property')) {
      const prop = f.detail!.split(':')[0]!;
      expect(byId.get(f.id)!.pv.split(';').filter((p) => p.startsWith(`${prop}:`))).toHaveLength(2);
    }
  });

  it('reads CRLF lines and the BOM-prefixed file without leaving a stray character', async () => {
    const byId = new Map(items.map((r) => [r.itemId, r]));
    for (const id of plantedIds('crlf')) {
      const r = byId.get(id)!;
      expect(r.category).not.toMatch(/\r/);
      expect(r.category.length).toBeGreaterThan(0);
    }
    const valid = await readFile(join(raw, 'valid.tsv'));
    expect([...valid.subarray(0, 3)]).toEqual([0xef, 0xbb, 0xbf]);
    const firstId = valid.subarray(3).toString('utf8').split('\t')[0]!;
    expect(byId.get(firstId)?.split).toBe('val');
    expect(items.every((r) => /^\d+$/.test(r.itemId))).toBe(true);
  });

  it('puts train.tsv and valid.tsv items in their splits', () => {
    for (const f of faults.files) {
      const rejected = faults.faults.filter((x) => x.file === f.file && REJECT_REASON[x.kind]).length;
      expect(report.splits[f.split].items).toBe(f.lines - rejected);
    }
  });
});

/**
 * @file Test-only helpers (never imported by production code): tiny work dirs made of segment
 * files and a manifest, written with raw-ingest's own segment codec.
 */
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  MANIFEST_FILE,
  encodeManifest,
  encodeSegmentRow,
  imageIdFor,
  segmentFileName,
  stripHashes,
  type SegmentEntry,
  type Split,
} from '@k3m-kit/raw-ingest';

/** One item as a test writes it: the knowledge in raw (`#:#`) or cleaned (`:`) spelling. */
export interface TestItem {
  itemId: string;
  kg: string;
  title?: string;
}

export interface TestSegment {
  split: Split;
  items: TestItem[];
}

/** A fresh empty directory under the OS temp dir. */
export function tempWorkDir(label = 'kg-triples'): Promise<string> {
  return mkdtemp(join(tmpdir(), `${label}-`));
}

/**
 * Writes segment files (seg = index in `segments`) and `segments.json` into `workDir`.
 * The pv field is `stripHashes(kg)`, as raw-ingest writes it.
 */
export async function writeSegments(workDir: string, segments: readonly TestSegment[]): Promise<void> {
  await mkdir(workDir, { recursive: true });
  const entries: SegmentEntry[] = [];
  for (const [seg, s] of segments.entries()) {
    const lines = s.items.map((it, k) =>
      encodeSegmentRow({
        imageId: imageIdFor(k, seg),
        title: it.title ?? `item ${it.itemId}`,
        pic: '',
        pv: stripHashes(it.kg),
        category: 'test',
        itemId: it.itemId,
      }),
    );
    const file = segmentFileName(seg);
    await writeFile(join(workDir, file), lines.map((l) => l + '\n').join(''));
    entries.push({ seg, split: s.split, file, items: s.items.length });
  }
  await writeFile(join(workDir, MANIFEST_FILE), encodeManifest({ version: 1, segmentSize: 1 + Math.max(0, ...segments.map((s) => s.items.length)), segments: entries }));
}

/**
 * Items of a raw 5-field dump (`itemID title url KG category`), for tests on real data.
 * Lines without 5 fields are skipped: raw-ingest owns the real validation.
 */
export function readRawDump(path: string): TestItem[] {
  const out: TestItem[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const f = line.replace(/\r$/, '').split('\t');
    if (f.length !== 5) continue;
    out.push({ itemId: f[0]!, title: f[1]!, kg: f[3]! });
  }
  return out;
}

/** Cuts items into segments of `size`, all of `split`. */
export function segmentsOf(items: readonly TestItem[], size: number, split: Split = 'train'): TestSegment[] {
  const out: TestSegment[] = [];
  for (let i = 0; i < items.length; i += size) out.push({ split, items: items.slice(i, i + size) });
  return out;
}

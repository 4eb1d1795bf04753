/**
 * @file `kg/knowledge.tsv`: the per-item cleaned knowledge string the LMDB stage stores as the
 * `pv` field (issue 3, build step 6).
 *
 * Layout: UTF-8, `\n` line ends, no header, exactly ONE line per item of the segment manifest,
 * in manifest order (segment by segment, items in segment-file order), including items with no
 * knowledge (empty `pv`). 4 TAB-separated fields:
 *
 *   image_id  split  item_id  pv
 *
 * - `image_id`, `split`, `item_id` are copied from the segment row / manifest.
 * - `pv` is the cleaned text form `p:v;p:v;` (every pair ends with `;`, k3m-reference.md 3.3)
 *   holding the first `--max-pairs` cleaned pairs in their original order. No property or value
 *   contains `:`, `;` or `#` (rewritten to full-width, see pv-string.ts), so the string parses
 *   back into exactly those pairs and the model's `:`/`;` token positions line up with them.
 *
 * Merge-join contract: `readKnowledge(workDir, split)` yields records in the same order, one for
 * one, as raw-ingest's `readItems(workDir, split)`, with equal `imageId`s. A consumer may walk both
 * streams in lockstep and must fail if the image ids ever differ.
 */
import { join } from 'node:path';
import { readTextLines } from '@k3m-kit/core';
import type { Split } from '@k3m-kit/raw-ingest';
import { parsePv, type Pair } from './pv-string.ts';

export const KNOWLEDGE_FILE = 'knowledge.tsv';

export interface KnowledgeRecord {
  imageId: string;
  split: Split;
  itemId: string;
  /** `p:v;p:v;`, or '' when the item has no knowledge left. */
  pv: string;
}

/** A knowledge record with its pairs parsed back from `pv`. */
export interface KnowledgeItem extends KnowledgeRecord {
  pairs: Pair[];
}

export class KnowledgeFormatError extends Error {
  override name = 'KnowledgeFormatError';
}

export function encodeKnowledgeLine(r: KnowledgeRecord): string {
  const fields = [r.imageId, r.split, r.itemId, r.pv];
  for (const f of fields) {
    if (/[\t\r\n]/.test(f)) throw new KnowledgeFormatError(`knowledge field contains TAB or a line break: ${JSON.stringify(f)}`);
  }
  return fields.join('\t');
}

export function decodeKnowledgeLine(text: string, where = '<knowledge>'): KnowledgeRecord {
  const f = text.split('\t');
  if (f.length !== 4) throw new KnowledgeFormatError(`${where}: expected 4 TAB-separated fields, got ${f.length}`);
  const [imageId, split, itemId, pv] = f as [string, string, string, string];
  if (split !== 'train' && split !== 'val') throw new KnowledgeFormatError(`${where}: bad split ${JSON.stringify(split)}`);
  if (pv !== '' && !pv.endsWith(';')) throw new KnowledgeFormatError(`${where}: pv must end with ';'`);
  return { imageId, split, itemId, pv };
}

/** Streams a knowledge file's records with parsed pairs. */
export async function* readKnowledgeFile(path: string, split?: Split): AsyncGenerator<KnowledgeItem> {
  for await (const { text, line } of readTextLines(path, 'run kg-triples build first')) {
    const r = decodeKnowledgeLine(text, `${path}:${line}`);
    if (split && r.split !== split) continue;
    yield { ...r, pairs: parsePv(r.pv).map(({ p, v }) => ({ p, v })) };
  }
}

/**
 * Streams `<workDir>/kg/knowledge.tsv`: one record per item, in segment-manifest order,
 * optionally only one split. Memory stays flat (one line at a time).
 *
 * Contract for merge-joins (lmdb-writer): the n-th record equals the n-th row of
 * `readItems(workDir, split)` from `@k3m-kit/raw-ingest`, with the same `imageId`; items without
 * knowledge are present with `pv === ''` and `pairs.length === 0`.
 *
 * @example
 * const items = readItems('work', 'train');
 * for await (const k of readKnowledge('work', 'train')) {
 *   const { value: row } = await items.next();
 *   if (row.imageId !== k.imageId) throw new Error('out of step');
 * }
 */
export function readKnowledge(workDir: string, split?: Split): AsyncGenerator<KnowledgeItem> {
  return readKnowledgeFile(join(workDir, 'kg', KNOWLEDGE_FILE), split);
}

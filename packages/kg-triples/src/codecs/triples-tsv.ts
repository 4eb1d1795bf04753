/**
 * @file Triples as TSV: the readable `kg/triples.tsv` and the per-segment intermediate
 * `kg/parts/seg-<n>.triples.tsv` that the merge step reads.
 *
 * `kg/triples.tsv`: UTF-8, `\n`, one header line `image_id item_id property value`, then one
 * kept triple per line (TAB-separated), items in segment-manifest order, pairs in original order.
 * `image_id` is the work directory's unique item key (the item's entity is `item:<image_id>`);
 * `item_id` is the catalogue's id.
 *
 * Part file: no header; `image_id item_id line property value` where `line` is the item's
 * 1-based line in its segment file (for reject records). Holds every cleaned pair of the segment,
 * before the vocabulary thresholds, which need all shards and are applied by the merge.
 */
import { createReadStream } from 'node:fs';
import { IoError } from '@k3m-kit/core';

export const TRIPLES_FILE = 'triples.tsv';
export const TRIPLES_HEADER = 'image_id\titem_id\tproperty\tvalue';

export interface ItemTriple {
  imageId: string;
  itemId: string;
  p: string;
  v: string;
}

export interface PartTriple extends ItemTriple {
  line: number;
}

function checkFields(fields: readonly string[]): void {
  for (const f of fields) {
    if (/[\t\r\n]/.test(f)) throw new Error(`triple field contains TAB or a line break: ${JSON.stringify(f)}`);
  }
}

export function encodeTripleLine(t: ItemTriple): string {
  const fields = [t.imageId, t.itemId, t.p, t.v];
  checkFields(fields);
  return fields.join('\t');
}

export function decodeTripleLine(text: string, where = '<triples>'): ItemTriple {
  const f = text.split('\t');
  if (f.length !== 4) throw new Error(`${where}: expected 4 TAB-separated fields, got ${f.length}`);
  const [imageId, itemId, p, v] = f as [string, string, string, string];
  return { imageId, itemId, p, v };
}

export function encodePartTripleLine(t: PartTriple): string {
  const fields = [t.imageId, t.itemId, String(t.line), t.p, t.v];
  checkFields(fields);
  return fields.join('\t');
}

export function decodePartTripleLine(text: string, where = '<part>'): PartTriple {
  const f = text.split('\t');
  if (f.length !== 5 || !/^\d+$/.test(f[2]!)) throw new Error(`${where}: expected image_id, item_id, line, property, value`);
  const [imageId, itemId, line, p, v] = f as [string, string, string, string, string];
  return { imageId, itemId, line: Number(line), p, v };
}

/**
 * Lines of a `\n`-terminated file, a read chunk at a time: the merge reads every part three
 * times, and one promise per line (readline) cost more than the work on the line.
 */
async function* lineBatches(path: string): AsyncGenerator<string[]> {
  const stream = createReadStream(path, { encoding: 'utf8', highWaterMark: 1 << 20 });
  let rest = '';
  try {
    for await (const chunk of stream) {
      const parts = (rest + (chunk as string)).split('\n');
      rest = parts.pop()!;
      yield parts;
    }
  } catch (e) {
    throw new IoError(path, e);
  } finally {
    stream.destroy();
  }
  if (rest !== '') yield [rest];
}

async function* lines(path: string): AsyncGenerator<[string, number]> {
  let n = 0;
  for await (const batch of lineBatches(path)) {
    for (const text of batch) {
      n++;
      if (text !== '') yield [text, n];
    }
  }
}

/** Streams a part file's triples, a batch (one read chunk) at a time. */
export async function* readPartTripleBatches(path: string): AsyncGenerator<PartTriple[]> {
  let n = 0;
  for await (const batch of lineBatches(path)) {
    const out: PartTriple[] = [];
    for (const text of batch) {
      n++;
      if (text !== '') out.push(decodePartTripleLine(text, `${path}:${n}`));
    }
    yield out;
  }
}

/**
 * Streams a part file's triples grouped by item (an item's triples are consecutive), the items
 * of a read chunk at a time.
 */
export async function* readPartItemBatches(path: string): AsyncGenerator<PartTriple[][]> {
  let group: PartTriple[] = [];
  for await (const batch of readPartTripleBatches(path)) {
    const items: PartTriple[][] = [];
    for (const t of batch) {
      if (group.length && group[0]!.imageId !== t.imageId) {
        items.push(group);
        group = [];
      }
      group.push(t);
    }
    yield items;
  }
  if (group.length) yield [group];
}

/** Streams a part file's triples. */
export async function* readPartTriples(path: string): AsyncGenerator<PartTriple> {
  for await (const batch of readPartTripleBatches(path)) yield* batch;
}

/** Streams `kg/triples.tsv` (header checked and skipped). */
export async function* readTriplesTsv(path: string): AsyncGenerator<ItemTriple> {
  for await (const [text, n] of lines(path)) {
    if (n === 1) {
      if (text !== TRIPLES_HEADER) throw new Error(`${path}:1: expected header ${JSON.stringify(TRIPLES_HEADER)}`);
      continue;
    }
    yield decodeTripleLine(text, `${path}:${n}`);
  }
}

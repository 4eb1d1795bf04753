/**
 * @file The OpenKE benchmark layout under `kg/`, which knowledge-graph tools (OpenKE, and the
 * many loaders copied from it) read unchanged.
 *
 * - `entity2id.txt`, `relation2id.txt`: first line the count `n`, then `n` lines `name<TAB>id`,
 *   ids dense from 0 in line order.
 * - `train2id.txt`, `valid2id.txt`, `test2id.txt`: first line the count `m`, then `m` lines
 *   `head tail relation` (space-separated entity, entity, relation ids).
 *
 * Our vocabularies: relations are properties; entities are values (named by the value text)
 * followed by items (named `item:<image_id>`). A value can never collide with an item name:
 * values have no ASCII `:` (see pv-string.ts). Order: by frequency, descending, ties by name in
 * code-unit order; items in segment-manifest order.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { IoError } from '@k3m-kit/core';

export const ENTITY_FILE = 'entity2id.txt';
export const RELATION_FILE = 'relation2id.txt';
export const TRAIN_FILE = 'train2id.txt';
export const VALID_FILE = 'valid2id.txt';
export const TEST_FILE = 'test2id.txt';

/** The entity name of an item. */
export function itemEntity(imageId: string): string {
  return `item:${imageId}`;
}

export class OpenKEFormatError extends Error {
  override name = 'OpenKEFormatError';
}

export function encodeVocabLine(name: string, id: number): string {
  if (/[\t\r\n]/.test(name)) throw new OpenKEFormatError(`vocabulary name contains TAB or a line break: ${JSON.stringify(name)}`);
  return `${name}\t${id}`;
}

export function encodeTriple2idLine(head: number, tail: number, relation: number): string {
  return `${head} ${tail} ${relation}`;
}

async function* countedLines(path: string): AsyncGenerator<string> {
  const stream = createReadStream(path, { encoding: 'utf8' });
  const rl = createInterface({ input: stream, crlfDelay: Infinity });
  let expected = -1;
  let seen = 0;
  try {
    for await (const text of rl) {
      if (expected < 0) {
        if (!/^\d+$/.test(text)) throw new OpenKEFormatError(`${path}:1: expected the count, got ${JSON.stringify(text)}`);
        expected = Number(text);
        continue;
      }
      if (text === '') continue;
      seen++;
      yield text;
    }
  } catch (e) {
    if (e instanceof OpenKEFormatError) throw e;
    throw new IoError(path, e);
  } finally {
    rl.close();
    stream.destroy();
  }
  if (expected < 0) throw new OpenKEFormatError(`${path}: empty file`);
  if (seen !== expected) throw new OpenKEFormatError(`${path}: header says ${expected} lines, found ${seen}`);
}

/** Reads a `*2id.txt` vocabulary; checks ids are dense from 0 in line order. Returns names by id. */
export async function readVocab(path: string): Promise<string[]> {
  const names: string[] = [];
  for await (const text of countedLines(path)) {
    const tab = text.lastIndexOf('\t');
    const id = Number(text.slice(tab + 1));
    if (tab < 0 || id !== names.length) throw new OpenKEFormatError(`${path}: line ${names.length + 2}: expected id ${names.length}`);
    names.push(text.slice(0, tab));
  }
  return names;
}

/** Streams a `train2id.txt`-style file as `[head, tail, relation]`. */
export async function* readTriples2id(path: string): AsyncGenerator<[number, number, number]> {
  for await (const text of countedLines(path)) {
    const f = text.split(' ');
    if (f.length !== 3 || !f.every((x) => /^\d+$/.test(x))) throw new OpenKEFormatError(`${path}: bad triple line ${JSON.stringify(text)}`);
    yield [Number(f[0]), Number(f[1]), Number(f[2])];
  }
}

/**
 * @file The registry of input formats (`--format`) and the guess made when none is given: each
 * input's first bytes are looked at, and all inputs must agree. When a file gives no clear sign
 * the run stops with a usage error naming it, rather than guessing.
 */
import { open, stat } from 'node:fs/promises';
import { UsageError } from '@k3m-kit/core';
import { jsonParser, type Token } from 'stream-json/parser.js';
import { getManyValues, isMany, none } from 'stream-chain/defs.js';
import { PRODUCT1M_SEPARATOR } from '../codecs/product1m-txt.ts';
import type { InputSpec } from './source.ts';
import { k3mReader } from './k3m.ts';
import { p9dReader } from './p9d.ts';
import { product1mReader } from './product1m.ts';
import type { FormatReader } from './source.ts';
import { isArchiveInput, taisuReader } from './taisu.ts';

/** The input formats build-data reads. */
export const FORMATS = Object.freeze({
  k3m: 'K3M raw TSV: item_id TAB title TAB image TAB p#:#v#;#... TAB category',
  p9d: 'P9D JSON: {domain: {item_id: {title, cate_name, image_link|oss_url}}} or flat with industry_name',
  product1m: 'Product1M text: item_id#####title#####url#####oss_url#####label#;#label',
  taisu: 'TaiSu: captions JSON {id: {w, g}} plus image archives (.tar, .tgz) of <id>.jpg',
});
export type InputFormat = keyof typeof FORMATS;

export const READERS: Readonly<Record<InputFormat, FormatReader>> = Object.freeze({
  k3m: k3mReader,
  p9d: p9dReader,
  product1m: product1mReader,
  taisu: taisuReader,
});

const HEAD_BYTES = 64 * 1024;
const P9D_KEYS = new Set(['title', 'cate_name', 'industry_name', 'image_link', 'oss_url']);
const TAISU_KEYS = new Set(['w', 'g']);

/**
 * The format of one input from its first bytes, or a sentence saying why it cannot tell.
 * @example await sniffFormat('raw/train.tsv') // 'k3m'
 */
export async function sniffFormat(path: string): Promise<InputFormat | { unknown: string }> {
  if (isArchiveInput(path)) return 'taisu';
  if ((await stat(path)).isFIFO()) return { unknown: 'it is a pipe, which cannot be looked at before it is read' };
  const fh = await open(path, 'r');
  let head: Buffer;
  try {
    const buf = Buffer.alloc(HEAD_BYTES);
    const { bytesRead } = await fh.read(buf, 0, HEAD_BYTES, 0);
    head = buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
  if (head.length >= 262 && head.subarray(257, 262).toString('latin1') === 'ustar') return 'taisu';
  let text = head.toString('utf8');
  if (text.startsWith('\uFEFF')) text = text.slice(1);
  const trimmed = text.trimStart();
  if (trimmed === '') return { unknown: 'the file is empty' };
  if (trimmed.startsWith('{')) return sniffJson(trimmed);
  const firstLine = trimmed.split('\n', 1)[0]!.replace(/\r$/, '');
  if (firstLine.includes(PRODUCT1M_SEPARATOR)) return 'product1m';
  const tabs = firstLine.split('\t').length;
  if (tabs === 5) return 'k3m';
  return { unknown: `the first line is neither 5 TAB-separated fields (it has ${tabs}) nor #####-separated` };
}

/** P9D or TaiSu from the keys inside the first members of a JSON object. */
function sniffJson(text: string): InputFormat | { unknown: string } {
  const tokenize = jsonParser({ packValues: true, streamValues: false });
  let out: unknown;
  try {
    out = tokenize(text);
  } catch (e) {
    return { unknown: `it starts like JSON but is not (${(e as Error).message})` };
  }
  const tokens = (out === none ? [] : isMany(out) ? getManyValues(out) : [out]) as Token[];
  let depth = 0;
  for (const t of tokens) {
    if (t.name === 'startObject' || t.name === 'startArray') depth++;
    else if (t.name === 'endObject' || t.name === 'endArray') depth--;
    else if (t.name === 'keyValue' && depth >= 2) {
      if (TAISU_KEYS.has(t.value)) return 'taisu';
      if (P9D_KEYS.has(t.value)) return 'p9d';
    }
  }
  return { unknown: 'a JSON object without P9D item fields (title, image_link, oss_url, ...) or TaiSu captions (w, g) in its first entries' };
}

/**
 * The one format of all inputs: `--format` when given, else what every input looks like.
 * Throws a {@link UsageError} when an input cannot be told or the inputs disagree.
 */
export async function resolveFormat(given: InputFormat | undefined, inputs: readonly InputSpec[]): Promise<InputFormat> {
  if (given) return given;
  const seen = new Map<InputFormat, string>();
  for (const input of inputs) {
    const f = await sniffFormat(input.path);
    if (typeof f !== 'string') {
      throw new UsageError(`--format: cannot tell the format of ${input.path}: ${f.unknown}; give --format ${Object.keys(FORMATS).join('|')}`);
    }
    if (!seen.has(f)) seen.set(f, input.path);
  }
  if (seen.size > 1) {
    throw new UsageError(`--format: the inputs look like different formats (${[...seen].map(([f, p]) => `${p}: ${f}`).join(', ')}); one run reads one format`);
  }
  return [...seen.keys()][0]!;
}

/**
 * @file Product1M's item lists (zhanxlin/Product1M, `product1m_{train,dev,test,gallery}_ossurl_v2.txt`):
 * decoder, encoder and line validation.
 *
 * Layout, as published: UTF-8, one item per line, `\n` (or `\r\n`) line ends, no header, fields
 * separated by `#####`:
 *
 *   item_id #####title #####image_url #####oss_url #####instance_labels
 *
 * e.g. `623174602918#####韩国ahc黄金套盒…#####https://img.alicdn.com/…jpg#####http://gongxiangdm.oss-cn-zhangjiakou.aliyuncs.com/…/623174602918.jpg#####AHC 黄金面霜#;#AHC 黄金水`.
 * Both URLs point to the same picture (the repository's README says either will do); the
 * instance labels are the products the picture shows, joined by `#;#`, the ground truth of
 * instance-level retrieval. A line with four fields (no labels) is accepted: labels are then [].
 *
 * Validation is per line and never throws; blank lines are not records; invalid UTF-8 rejects
 * its own line only. Reasons: `field-count` (fewer than 4 or more than 5 fields), `invalid-utf8`,
 * `empty-id`, `no-image-ref` (both URLs empty), `bad-image-ref` (neither usable),
 * `line-break-in-field`.
 */
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { isUsableImageRef } from './raw-tsv.ts';

export const PRODUCT1M_SEPARATOR = '#####';
export const LABEL_SEPARATOR = '#;#';

/** Why a Product1M line was rejected. */
export const PRODUCT1M_REJECT_REASONS = Object.freeze({
  'field-count': 'not 4 or 5 #####-separated fields',
  'invalid-utf8': 'the line is not valid UTF-8',
  'empty-id': 'the item id is empty',
  'no-image-ref': 'both image URLs are empty',
  'bad-image-ref': 'neither image URL is an http(s) URL, a file: URL or a relative path',
  'line-break-in-field': 'a field holds a stray carriage return',
});
export type Product1mRejectReason = keyof typeof PRODUCT1M_REJECT_REASONS;

/** One valid line. */
export interface Product1mItem {
  line: number;
  itemId: string;
  title: string;
  /** The usable image URLs in file order (the first, then the OSS mirror). */
  imageRefs: string[];
  instanceLabels: string[];
}

export type Product1mRecord =
  | ({ ok: true } & Product1mItem)
  | { ok: false; line: number; reason: Product1mRejectReason; detail: string; id?: string };

/** One line without its line end. */
export function encodeProduct1mLine(item: { itemId: string; title: string; url: string; ossUrl: string; instanceLabels?: readonly string[] }): string {
  const fields = [item.itemId, item.title, item.url, item.ossUrl];
  if (item.instanceLabels) fields.push(item.instanceLabels.join(LABEL_SEPARATOR));
  for (const f of fields) {
    if (/[\r\n]/.test(f) || f.includes(PRODUCT1M_SEPARATOR)) throw new Error(`Product1M field contains a line break or #####: ${JSON.stringify(f)}`);
  }
  return fields.join(PRODUCT1M_SEPARATOR);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Validates one line's bytes (line end removed). */
export function decodeProduct1mLine(bytes: Buffer, line: number): Product1mRecord {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return { ok: false, line, reason: 'invalid-utf8', detail: PRODUCT1M_REJECT_REASONS['invalid-utf8'] };
  }
  const fields = text.split(PRODUCT1M_SEPARATOR);
  const id = fields[0]!.trim();
  const withId = id === '' ? {} : { id };
  if (fields.length < 4 || fields.length > 5) {
    return { ok: false, line, reason: 'field-count', detail: `expected 4 or 5 #####-separated fields, got ${fields.length}`, ...withId };
  }
  if (fields.some((f) => f.includes('\r'))) return { ok: false, line, reason: 'line-break-in-field', detail: PRODUCT1M_REJECT_REASONS['line-break-in-field'], ...withId };
  if (id === '') return { ok: false, line, reason: 'empty-id', detail: PRODUCT1M_REJECT_REASONS['empty-id'] };
  const refs = [fields[2]!.trim(), fields[3]!.trim()].filter((r) => r !== '');
  if (refs.length === 0) return { ok: false, line, reason: 'no-image-ref', detail: PRODUCT1M_REJECT_REASONS['no-image-ref'], id };
  const usable = refs.filter(isUsableImageRef);
  if (usable.length === 0) return { ok: false, line, reason: 'bad-image-ref', detail: refs.join(' '), id };
  const labels = (fields[4] ?? '').split(LABEL_SEPARATOR).filter((l) => l !== '');
  return { ok: true, line, itemId: id, title: fields[1]!, imageRefs: usable, instanceLabels: labels };
}

/**
 * Decodes a Product1M list line by line.
 * @example for await (const r of decodeProduct1m(createReadStream('product1m_dev_ossurl_v2.txt'))) if (r.ok) use(r)
 */
export async function* decodeProduct1m(input: Readable): AsyncGenerator<Product1mRecord> {
  for await (const { bytes, line } of splitLines(input)) yield decodeProduct1mLine(bytes, line);
}

/** Decodes the file at `path`; see {@link decodeProduct1m}. */
export function decodeProduct1mFile(path: string): AsyncGenerator<Product1mRecord> {
  return decodeProduct1m(createReadStream(path));
}

/**
 * Splits bytes at `\n` (a `\r` before it is dropped), with 1-based line numbers; a leading
 * UTF-8 BOM is dropped and blank lines are skipped. Works on bytes so that an invalid UTF-8
 * sequence stays inside its own line.
 */
async function* splitLines(input: Readable): AsyncGenerator<{ bytes: Buffer; line: number }> {
  let rest: Buffer = Buffer.alloc(0);
  let line = 0;
  let first = true;
  for await (const chunk of input as AsyncIterable<Buffer>) {
    let buf = rest.length > 0 ? Buffer.concat([rest, chunk]) : chunk;
    if (first && buf.length >= 3) {
      first = false;
      if (buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) buf = buf.subarray(3);
    }
    let start = 0;
    for (let nl = buf.indexOf(0x0a, start); nl !== -1; nl = buf.indexOf(0x0a, start)) {
      line++;
      const end = nl > start && buf[nl - 1] === 0x0d ? nl - 1 : nl;
      if (end > start) yield { bytes: buf.subarray(start, end), line };
      start = nl + 1;
    }
    rest = Buffer.from(buf.subarray(start));
  }
  if (rest.length > 0) {
    line++;
    const end = rest[rest.length - 1] === 0x0d ? rest.length - 1 : rest.length;
    if (end > 0) yield { bytes: rest.subarray(0, end), line };
  }
}

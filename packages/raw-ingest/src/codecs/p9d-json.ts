/**
 * @file P9D's item files (KevinLight831/P9D; the loader in KevinLight831/CTP
 * `data/pretrain_product_dataset.py` and `train/train_SeqF.py`): decoder, encoder and validation.
 *
 * Layout, as published: UTF-8 JSON objects keyed by item id. `train.json` groups the items by
 * product domain (P9D's nine industries, in Chinese, e.g. 家居用品, 服饰鞋包, 3C数码):
 *
 *   { "家居用品": { "<item_id>": { "title": "...", "cate_name": "...", "image_link": "https://..." }, ... }, ... }
 *
 * `test.json`, `query.json` and `gallery.json` are flat and name the domain in each item:
 *
 *   { "<item_id>": { "title": "...", "cate_name": "...", "industry_name": "家居用品", "oss_url": "https://..." }, ... }
 *
 * The image link is `image_link` or `oss_url` (P9D's download scripts read one or the other);
 * when both are there both are tried, `image_link` first. `title` is the caption, `cate_name`
 * the category (written to the K3M category column) and the domain (the group key, else
 * `industry_name`) is kept as an extra field: continual pretraining splits on it. Other fields
 * are ignored.
 *
 * Validation per item, never throwing: `bad-value` (the item is not an object, or a field that
 * must be text is not), `empty-id`, `no-image-ref`, `bad-image-ref`; a file that stops being
 * JSON ends with one `json-syntax` reject at the line where reading stopped. Positions are the
 * line of the item's key and its ordinal among the file's items.
 */
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { streamJsonMembers } from './json-members.ts';
import { isUsableImageRef } from './raw-tsv.ts';

/** Why a P9D item was rejected. */
export const P9D_REJECT_REASONS = Object.freeze({
  'bad-value': 'the item is not a JSON object, or title / cate_name / image link is not text',
  'empty-id': 'the item id (the key) is empty',
  'no-image-ref': 'neither image_link nor oss_url is given',
  'bad-image-ref': 'no image link is an http(s) URL, a file: URL or a relative path',
  'json-syntax': 'the file is not valid JSON from here on (reading the file stops)',
});
export type P9dRejectReason = keyof typeof P9D_REJECT_REASONS;

/** The fields of one item as the encoder takes them. */
export interface P9dEntry {
  itemId: string;
  title: string;
  category: string;
  domain: string;
  imageLink?: string;
  ossUrl?: string;
}

export interface P9dItem {
  line: number;
  entry: number;
  itemId: string;
  title: string;
  category: string;
  domain: string;
  imageRefs: string[];
}

export type P9dRecord = ({ ok: true } & P9dItem) | { ok: false; line: number; entry: number; reason: P9dRejectReason; detail: string; id?: string };

/** One item's value object (without its key), flat-file form (with `industry_name`) unless `grouped`. */
export function encodeP9dItem(e: P9dEntry, grouped: boolean): string {
  return JSON.stringify({
    title: e.title,
    cate_name: e.category,
    ...(grouped ? {} : { industry_name: e.domain }),
    ...(e.imageLink !== undefined ? { image_link: e.imageLink } : {}),
    ...(e.ossUrl !== undefined ? { oss_url: e.ossUrl } : {}),
  });
}

/**
 * The text of a P9D file, piece by piece (so large files can be streamed to disk). With
 * `grouped`, consecutive items of the same domain form one group, as in train.json.
 */
export function* encodeP9dJson(entries: Iterable<P9dEntry>, grouped: boolean): Generator<string> {
  yield '{';
  let first = true;
  let group: string | undefined;
  for (const e of entries) {
    if (grouped && e.domain !== group) {
      yield `${group === undefined ? '' : '\n  },'}\n  ${JSON.stringify(e.domain)}: {`;
      group = e.domain;
      first = true;
    }
    const indent = grouped ? '    ' : '  ';
    yield `${first ? '' : ','}\n${indent}${JSON.stringify(e.itemId)}: ${encodeP9dItem(e, grouped)}`;
    first = false;
  }
  yield grouped && group !== undefined ? '\n  }\n}\n' : '\n}\n';
}

const text = (v: unknown): v is string | undefined => v === undefined || typeof v === 'string';

/** Validates one item. */
export function decodeP9dItem(key: string, value: unknown, group: string | undefined, line: number, entry: number): P9dRecord {
  const id = key.trim();
  const withId = id === '' ? {} : { id };
  const at = { line, entry };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, ...at, reason: 'bad-value', detail: `item is ${Array.isArray(value) ? 'an array' : value === null ? 'null' : typeof value}, not an object`, ...withId };
  }
  const v = value as Record<string, unknown>;
  for (const f of ['title', 'cate_name', 'industry_name', 'image_link', 'oss_url']) {
    if (!text(v[f])) return { ok: false, ...at, reason: 'bad-value', detail: `${f} is ${typeof v[f]}, not text`, ...withId };
  }
  if (id === '') return { ok: false, ...at, reason: 'empty-id', detail: P9D_REJECT_REASONS['empty-id'] };
  const refs = [v.image_link, v.oss_url].map((r) => ((r as string | undefined) ?? '').trim()).filter((r, i, all) => r !== '' && all.indexOf(r) === i);
  if (refs.length === 0) return { ok: false, ...at, reason: 'no-image-ref', detail: P9D_REJECT_REASONS['no-image-ref'], id };
  const usable = refs.filter(isUsableImageRef);
  if (usable.length === 0) return { ok: false, ...at, reason: 'bad-image-ref', detail: refs.join(' '), id };
  const domain = group ?? ((v.industry_name as string | undefined) ?? '');
  return { ok: true, ...at, itemId: id, title: (v.title as string | undefined) ?? '', category: (v.cate_name as string | undefined) ?? '', domain, imageRefs: usable };
}

/**
 * Decodes a P9D file, grouped or flat, streaming.
 * @example for await (const r of decodeP9dJson(createReadStream('train.json'))) if (r.ok) use(r)
 */
export async function* decodeP9dJson(input: Readable): AsyncGenerator<P9dRecord> {
  for await (const m of streamJsonMembers(input, { groups: true })) {
    if (m.kind === 'syntax-error') {
      yield { ok: false, line: m.line, entry: m.entry, reason: 'json-syntax', detail: m.message };
      return;
    }
    yield decodeP9dItem(m.key, m.value, m.group, m.line, m.entry);
  }
}

/** Decodes the file at `path`; see {@link decodeP9dJson}. */
export function decodeP9dJsonFile(path: string): AsyncGenerator<P9dRecord> {
  return decodeP9dJson(createReadStream(path));
}

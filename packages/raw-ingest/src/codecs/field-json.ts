/**
 * @file `image_lmdb_json/{caption,pic,pv,itemID,category}_{train,val}.json`, the reference's
 * per-field files (k3m-reference.md 2.3), laid out as Python's `json.dump(..., indent=2,
 * ensure_ascii=False)` writes them:
 *
 *   [
 *     [
 *       "0_s0",
 *       "value"
 *     ],
 *     ...
 *   ]
 *
 * (an empty split is `[]`). Deviation: every value is the string from the segment file. The
 * reference re-reads its CSV with pandas first, so its empty cells become the non-standard token
 * `NaN` and numeric-looking columns (itemID) become numbers; we write `""` and strings, which
 * every JSON reader accepts (k3m-reference.md section 8, item 13: treat missing as "").
 */
import type { SegmentRow } from './segment.ts';

/** The JSON field name and the segment-row property it holds. */
export const JSON_FIELDS = Object.freeze({
  caption: 'title',
  pic: 'pic',
  pv: 'pv',
  itemID: 'itemId',
  category: 'category',
} as const satisfies Record<string, keyof SegmentRow>);
export type JsonField = keyof typeof JSON_FIELDS;

/** `<field>_<split>.json` */
export function fieldJsonFileName(field: JsonField, split: string): string {
  return `${field}_${split}.json`;
}

/**
 * One `[image_id, value]` entry, with the separator that precedes it.
 * JSON.stringify escapes exactly what Python's json escapes with ensure_ascii=False.
 */
export function encodeFieldJsonEntry(imageId: string, value: string, first: boolean): string {
  return `${first ? '[\n' : ',\n'}  [\n    ${JSON.stringify(imageId)},\n    ${JSON.stringify(value)}\n  ]`;
}

/** What closes the array, given how many entries were written. */
export function encodeFieldJsonEnd(count: number): string {
  return count === 0 ? '[]' : '\n]';
}

/** Decodes and validates a field file. */
export function decodeFieldJson(text: string): [string, string][] {
  const v = JSON.parse(text) as unknown;
  if (!Array.isArray(v) || !v.every((e) => Array.isArray(e) && e.length === 2 && e.every((x) => typeof x === 'string'))) {
    throw new Error('field json: expected an array of [image_id, value] string pairs');
  }
  return v as [string, string][];
}

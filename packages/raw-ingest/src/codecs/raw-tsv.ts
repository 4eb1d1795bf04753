/**
 * @file The raw product dump (k3m-reference.md 2.1, design.md section 6.1): decoder, encoder and
 * line validation.
 *
 * Layout: UTF-8 (a leading BOM is ignored), one item per line, `\n` or `\r\n` line ends, no
 * header, no quoting, exactly 5 TAB-separated fields:
 *
 *   item_id  title  image_ref  knowledge  category
 *
 * `knowledge` is property-value pairs `p#:#v`, joined by `#;#` (`p1#:#v1#;#p2#:#v2`).
 * `image_ref` is an http(s) URL, a `file:` URL or a path relative to the file's directory.
 *
 * Validation is per line and never throws: a bad line is returned as a {@link RawReject} with its
 * 1-based line number and a stable reason, so a stage can log it and go on. Blank lines are not
 * records and are skipped. Malformed knowledge pairs do not reject the line: they are dropped
 * from the item and counted in `malformedPairs`.
 */
import { createReadStream } from 'node:fs';
import { Transform, type Readable } from 'node:stream';
import { parse } from 'csv-parse';

export const RAW_FIELDS = ['item_id', 'title', 'image_ref', 'knowledge', 'category'] as const;
export const PAIR_SEPARATOR = '#;#';
export const PV_SEPARATOR = '#:#';

/** Why a raw line was rejected; the values are the `reason` in `rejects/build-data.jsonl`. */
export const RAW_REJECT_REASONS = Object.freeze({
  'field-count': 'not exactly 5 TAB-separated fields',
  'invalid-utf8': 'the line is not valid UTF-8',
  'empty-id': 'the item id is empty',
  'no-image-ref': 'the image reference is empty',
  'bad-image-ref': 'the image reference is not an http(s) URL, a file: URL or a relative path',
  'line-break-in-field': 'a field holds a stray carriage return',
});
export type RawRejectReason = keyof typeof RAW_REJECT_REASONS;

export type KnowledgePair = readonly [property: string, value: string];

/** One valid line. */
export interface RawItem {
  line: number;
  itemId: string;
  title: string;
  imageRef: string;
  /** The well-formed pairs, in input order (repeated properties kept, as the reference does). */
  pairs: KnowledgePair[];
  /** Pairs dropped because they were not `p#:#v` with a non-empty property. */
  malformedPairs: number;
  category: string;
}

export interface RawReject {
  line: number;
  reason: RawRejectReason;
  detail: string;
  id?: string;
}

export type RawRecord = ({ ok: true } & RawItem) | ({ ok: false } & RawReject);

/**
 * Splits a knowledge string into pairs. A pair needs exactly one `#:#` and a non-empty property;
 * anything else (`p#:#`, `#:#v` with no property, `p#:#v#:#w`, a bare word) is dropped and counted.
 * An empty value is kept: it is data (an unfilled attribute), not a syntax error.
 * @example parseKnowledge('颜色#:#红色#;#bad') // { pairs: [['颜色', '红色']], malformed: 1 }
 */
export function parseKnowledge(kg: string): { pairs: KnowledgePair[]; malformed: number } {
  const pairs: KnowledgePair[] = [];
  let malformed = 0;
  if (kg === '') return { pairs, malformed };
  for (const part of kg.split(PAIR_SEPARATOR)) {
    const pv = part.split(PV_SEPARATOR);
    if (pv.length !== 2 || pv[0] === '') malformed++;
    else pairs.push([pv[0]!, pv[1]!]);
  }
  return { pairs, malformed };
}

/** The inverse of {@link parseKnowledge} for well-formed pairs. */
export function encodeKnowledge(pairs: readonly KnowledgePair[]): string {
  return pairs.map(([p, v]) => `${p}${PV_SEPARATOR}${v}`).join(PAIR_SEPARATOR);
}

/** One raw line without its line end. */
export function encodeRawLine(item: Pick<RawItem, 'itemId' | 'title' | 'imageRef' | 'pairs' | 'category'>): string {
  const fields = [item.itemId, item.title, item.imageRef, encodeKnowledge(item.pairs), item.category];
  for (const f of fields) if (/[\t\r\n]/.test(f)) throw new Error(`raw field contains TAB or a line break: ${JSON.stringify(f)}`);
  return fields.join('\t');
}

/** Whether `ref` can name an image: http(s) or file: URL, or a path (no other URL scheme). */
export function isUsableImageRef(ref: string): boolean {
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(ref)?.[1]?.toLowerCase();
  // One letter before ':' is a Windows drive, i.e. a path.
  if (scheme === undefined || scheme.length === 1) return true;
  if (scheme !== 'http' && scheme !== 'https' && scheme !== 'file') return false;
  try {
    new URL(ref);
    return true;
  } catch {
    return false;
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Drops a leading UTF-8 BOM. Done here, not by csv-parse, whose `bom` switches its decoding to UTF-8. */
function stripBom(): Transform {
  let first = true;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      if (first) {
        first = false;
        if (chunk.length >= 3 && chunk[0] === 0xef && chunk[1] === 0xbb && chunk[2] === 0xbf) chunk = chunk.subarray(3);
      }
      cb(null, chunk);
    },
  });
}

/**
 * Decodes raw lines one by one, validating each line on its own (duplicate ids across lines and
 * files are the stage's concern, not the codec's).
 *
 * The bytes are parsed as latin1 (one char per byte, TAB and line ends are ASCII) and each field
 * is then decoded as strict UTF-8, so an invalid byte rejects its own line and nothing else.
 * @example for await (const r of decodeRawTsv(createReadStream('train.tsv'))) if (r.ok) use(r)
 */
export async function* decodeRawTsv(input: Readable): AsyncGenerator<RawRecord> {
  const parser = input.pipe(stripBom()).pipe(
    parse({
      delimiter: '\t',
      quote: false,
      record_delimiter: ['\n', '\r\n'],
      bom: false,
      encoding: 'latin1',
      relax_column_count: true,
      skip_empty_lines: true,
      info: true,
    }),
  );
  input.on('error', (e) => parser.destroy(e));
  for await (const { record, info } of parser as AsyncIterable<{ record: string[]; info: { lines: number } }>) {
    yield decodeFields(record, info.lines);
  }
}

/** Decodes the raw file at `path`; see {@link decodeRawTsv}. */
export function decodeRawTsvFile(path: string): AsyncGenerator<RawRecord> {
  return decodeRawTsv(createReadStream(path));
}

function decodeFields(latin1Fields: string[], line: number): RawRecord {
  const fields: string[] = [];
  for (const f of latin1Fields) {
    try {
      fields.push(utf8.decode(Buffer.from(f, 'latin1')));
    } catch {
      return { ok: false, line, reason: 'invalid-utf8', detail: RAW_REJECT_REASONS['invalid-utf8'] };
    }
  }
  const id = fields[0] ?? '';
  const withId = id === '' ? {} : { id };
  if (fields.length !== 5) {
    return { ok: false, line, reason: 'field-count', detail: `expected 5 TAB-separated fields, got ${fields.length}`, ...withId };
  }
  const [itemId, title, imageRef, kg, category] = fields as [string, string, string, string, string];
  if (fields.some((f) => f.includes('\r'))) {
    return { ok: false, line, reason: 'line-break-in-field', detail: RAW_REJECT_REASONS['line-break-in-field'], ...withId };
  }
  if (itemId.trim() === '') return { ok: false, line, reason: 'empty-id', detail: RAW_REJECT_REASONS['empty-id'] };
  if (imageRef.trim() === '') return { ok: false, line, reason: 'no-image-ref', detail: RAW_REJECT_REASONS['no-image-ref'], id };
  if (!isUsableImageRef(imageRef)) return { ok: false, line, reason: 'bad-image-ref', detail: imageRef, id };
  const { pairs, malformed } = parseKnowledge(kg);
  return { ok: true, line, itemId, title, imageRef, pairs, malformedPairs: malformed, category };
}

/**
 * @file TaiSu's captions file (ksOAn6g5/TaiSu README): decoder, encoder and validation.
 *
 * Layout, as published: one UTF-8 JSON object for the whole dataset, keyed by image id, each
 * value holding the web caption `w` and the generated caption `g`:
 *
 *   { "img1baiducomitu1848496827104259151": { "w": "web caption", "g": "generated caption" }, ... }
 *
 * The id is also the image's name in the archives (`<id>.jpg`, taisu-archive.ts). It is read
 * streaming (166 M entries in the real file). A caption that is absent or null is simply not
 * there (an item may lack one of the two); any other non-text value is a `bad-value`.
 *
 * Validation per entry, never throwing: `bad-value` (not an object, or `w`/`g` not text),
 * `empty-id`; a file that stops being JSON ends with one `json-syntax` reject. Positions are the
 * line of the entry's key and its ordinal.
 */
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { streamJsonMembers } from './json-members.ts';

/** Why a caption entry was rejected. */
export const TAISU_CAPTION_REJECT_REASONS = Object.freeze({
  'bad-value': 'the entry is not a JSON object, or w / g is not text',
  'empty-id': 'the image id (the key) is empty',
  'json-syntax': 'the file is not valid JSON from here on (reading the file stops)',
});
export type TaisuCaptionRejectReason = keyof typeof TAISU_CAPTION_REJECT_REASONS;

/** One entry's captions; a missing caption is undefined. */
export interface TaisuCaptions {
  id: string;
  w?: string;
  g?: string;
}

export type TaisuCaptionRecord =
  | ({ ok: true; line: number; entry: number } & TaisuCaptions)
  | { ok: false; line: number; entry: number; reason: TaisuCaptionRejectReason; detail: string; id?: string };

/** The captions file, piece by piece (one entry per line). */
export function* encodeTaisuCaptions(entries: Iterable<TaisuCaptions>): Generator<string> {
  yield '{';
  let first = true;
  for (const e of entries) {
    const value = { ...(e.w !== undefined ? { w: e.w } : {}), ...(e.g !== undefined ? { g: e.g } : {}) };
    yield `${first ? '' : ','}\n${JSON.stringify(e.id)}: ${JSON.stringify(value)}`;
    first = false;
  }
  yield '\n}\n';
}

/** Validates one entry. */
export function decodeTaisuEntry(key: string, value: unknown, line: number, entry: number): TaisuCaptionRecord {
  const id = key.trim();
  const withId = id === '' ? {} : { id };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, line, entry, reason: 'bad-value', detail: `entry is ${Array.isArray(value) ? 'an array' : value === null ? 'null' : typeof value}, not an object`, ...withId };
  }
  const v = value as Record<string, unknown>;
  for (const f of ['w', 'g']) {
    if (v[f] !== undefined && v[f] !== null && typeof v[f] !== 'string') {
      return { ok: false, line, entry, reason: 'bad-value', detail: `${f} is ${typeof v[f]}, not text`, ...withId };
    }
  }
  if (id === '') return { ok: false, line, entry, reason: 'empty-id', detail: TAISU_CAPTION_REJECT_REASONS['empty-id'] };
  return {
    ok: true,
    line,
    entry,
    id,
    ...(typeof v.w === 'string' ? { w: v.w } : {}),
    ...(typeof v.g === 'string' ? { g: v.g } : {}),
  };
}

/**
 * Decodes a captions file, streaming.
 * @example for await (const r of decodeTaisuCaptions(createReadStream('captions.json'))) if (r.ok) use(r.w)
 */
export async function* decodeTaisuCaptions(input: Readable): AsyncGenerator<TaisuCaptionRecord> {
  for await (const m of streamJsonMembers(input, { groups: false })) {
    if (m.kind === 'syntax-error') {
      yield { ok: false, line: m.line, entry: m.entry, reason: 'json-syntax', detail: m.message };
      return;
    }
    yield decodeTaisuEntry(m.key, m.value, m.line, m.entry);
  }
}

/** Decodes the file at `path`; see {@link decodeTaisuCaptions}. */
export function decodeTaisuCaptionsFile(path: string): AsyncGenerator<TaisuCaptionRecord> {
  return decodeTaisuCaptions(createReadStream(path));
}

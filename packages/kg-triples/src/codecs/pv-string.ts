/**
 * @file The knowledge text form: property-value pairs as one string (k3m-reference.md 2.1, 3.3).
 *
 * Two spellings exist and both are parsed:
 *
 * - raw (the input dump):      `p#:#v#;#p#:#v`  (no trailing separator)
 * - cleaned (segment files and what the model reads): `p:v;p:v` or `p:v;p:v;` (the reference
 *   deletes every `#`; the model's text always ends each pair with `;`).
 *
 * A string is read as raw when it contains `#:#` or `#;#`, else as cleaned. The cleaned form is
 * lossy (the `#` deletion makes ASCII `:`/`;` inside text look like separators), so it is read
 * with two recovery rules, both documented in the README:
 *
 * - a pair splits at its FIRST `:`, so a value containing `:` survives (`时间:10:30`);
 * - a non-empty piece without any `:` continues the previous pair's value (`尺码:S;M` is one
 *   pair, value `S;M`): that is exactly what a raw value containing `;` turns into.
 *
 * Any other piece without a property separator (the first piece, an empty piece in the middle,
 * any such piece in the raw form) is returned as a malformed pair so the caller can reject it
 * with a reason; a single trailing separator is not a pair. Parsing never throws.
 *
 * {@link formatPv} writes the cleaned form the model reads: `p:v;` per pair. It is only
 * parseable when no property or value contains `:`, `;` or `#` (`#` could forge a raw
 * separator). {@link rewriteSeparators} makes it so by mapping them to the full-width `：` `；`
 * `＃`, which bert-base-chinese does not treat as separators (ids 8039/8040 versus 131/132 for
 * ASCII, k3m-reference.md 3.2), so the model's `:`/`;` positions stay aligned with the pairs.
 */

/** One property-value pair: the triple `<item, p, v>` without its item. */
export interface Pair {
  p: string;
  v: string;
}

/** A parsed pair; `malformed` when the piece had no property separator (`v` is then ''). */
export interface ParsedPair extends Pair {
  malformed?: true;
}

export const RAW_PAIR_SEP = '#;#';
export const RAW_PROP_SEP = '#:#';
export const PAIR_SEP = ';';
export const PROP_SEP = ':';
/** What {@link rewriteSeparators} puts in place of `:` and `;` inside a property or value. */
export const FULLWIDTH_PROP_SEP = '\uFF1A'; // ：
export const FULLWIDTH_PAIR_SEP = '\uFF1B'; // ；
export const FULLWIDTH_HASH = '\uFF03'; // ＃

/** Whether `text` uses the raw `#:#` / `#;#` spelling. */
export function isRawForm(text: string): boolean {
  return text.includes(RAW_PROP_SEP) || text.includes(RAW_PAIR_SEP);
}

/**
 * Parses a knowledge string in either spelling. Empty text has no pairs.
 * @example parsePv('省份#:#河北省#;#款式#:#经济型') // [{p:'省份',v:'河北省'},{p:'款式',v:'经济型'}]
 * @example parsePv('时间:10:30;尺码:S;M;') // [{p:'时间',v:'10:30'},{p:'尺码',v:'S;M'}]
 */
export function parsePv(text: string): ParsedPair[] {
  if (text === '') return [];
  const raw = isRawForm(text);
  const pieces = text.split(raw ? RAW_PAIR_SEP : PAIR_SEP);
  if (pieces.length > 1 && pieces[pieces.length - 1] === '') pieces.pop();
  const propSep = raw ? RAW_PROP_SEP : PROP_SEP;
  const out: ParsedPair[] = [];
  for (const piece of pieces) {
    const at = piece.indexOf(propSep);
    if (at >= 0) {
      out.push({ p: piece.slice(0, at), v: piece.slice(at + propSep.length) });
      continue;
    }
    const prev = out[out.length - 1];
    if (!raw && piece !== '' && prev && !prev.malformed) prev.v += PAIR_SEP + piece;
    else out.push({ p: piece, v: '', malformed: true });
  }
  return out;
}

/**
 * The cleaned text the model reads: `p:v;` per pair, in order.
 * @example formatPv([{p:'省份',v:'河北省'}]) // '省份:河北省;'
 */
export function formatPv(pairs: readonly Pair[]): string {
  let s = '';
  for (const { p, v } of pairs) s += `${p}${PROP_SEP}${v}${PAIR_SEP}`;
  return s;
}

const RESERVED = /[:;#]/;
const RESERVED_ALL = /[:;#]/g;
const FULLWIDTH: Record<string, string> = { ':': FULLWIDTH_PROP_SEP, ';': FULLWIDTH_PAIR_SEP, '#': FULLWIDTH_HASH };

/** Whether a property or value contains `:`, `;` or `#`, which the text form reserves. */
export function hasSeparator(text: string): boolean {
  return RESERVED.test(text);
}

/**
 * Maps ASCII `:`/`;`/`#` to full-width `：`/`；`/`＃` so the text form stays parseable and
 * the model's separator positions (ids 131/132) stay aligned with the pairs.
 * @example rewriteSeparators('10:30') // '10：30'
 */
export function rewriteSeparators(text: string): string {
  return text.replace(RESERVED_ALL, (c) => FULLWIDTH[c]!);
}

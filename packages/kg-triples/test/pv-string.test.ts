import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Cleaner, DEFAULT_NORMALISE, formatPv, hasSeparator, parsePv, rewriteSeparators, type Pair } from '../src/index.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const VOCAB = resolve(repoRoot, '../shared/data/k3m-golden/vocab.txt');

/** Any text, including lone surrogates, separators and their pieces. */
const anyText = fc.oneof(
  fc.string({ unit: 'binary' }),
  fc.array(fc.constantFrom('#', ':', ';', '#:#', '#;#', 'a', '颜色', ' ', '\u3000', '：', '；', ''), { maxLength: 20 }).map((a) => a.join('')),
);
const cleanText = fc.string({ unit: 'grapheme' }).filter((s) => !hasSeparator(s));
const cleanPair = fc.record({ p: cleanText, v: cleanText });

describe('parsePv', () => {
  it('never throws, and every pair it returns is well-formed', () => {
    fc.assert(
      fc.property(anyText, (s) => {
        const pairs = parsePv(s);
        for (const x of pairs) {
          expect(typeof x.p).toBe('string');
          expect(typeof x.v).toBe('string');
        }
        // The cleaner takes whatever the parser gives, also without crashing.
        new Cleaner(DEFAULT_NORMALISE).clean(pairs);
      }),
      { numRuns: 2000 },
    );
  });

  it('parse(format(pairs)) == pairs for pairs without separators', () => {
    fc.assert(fc.property(fc.array(cleanPair, { maxLength: 12 }), (pairs) => {
      expect(parsePv(formatPv(pairs))).toEqual(pairs);
    }));
  });

  it('any text survives the text form once separators are rewritten', () => {
    fc.assert(
      fc.property(fc.array(fc.record({ p: fc.string(), v: fc.string() }), { maxLength: 8 }), (raw) => {
        const pairs: Pair[] = raw.map(({ p, v }) => ({ p: rewriteSeparators(p), v: rewriteSeparators(v) }));
        const text = formatPv(pairs);
        expect(parsePv(text)).toEqual(pairs);
        // One ':' and one ';' per pair: the model's separator positions line up with the pairs.
        expect([...text].filter((c) => c === ':').length).toBe(pairs.length);
        expect([...text].filter((c) => c === ';').length).toBe(pairs.length);
      }),
    );
  });

  it('reads the raw and the cleaned spelling alike', () => {
    const want = [
      { p: '省份', v: '河北省' },
      { p: '款式定位', v: '经济型' },
    ];
    expect(parsePv('省份#:#河北省#;#款式定位#:#经济型')).toEqual(want);
    expect(parsePv('省份:河北省;款式定位:经济型')).toEqual(want);
    expect(parsePv('省份:河北省;款式定位:经济型;')).toEqual(want);
    expect(parsePv('')).toEqual([]);
  });

  it('recovers values with : or ; from the cleaned form, and flags pieces without a separator', () => {
    expect(parsePv('时间:10:30;尺码:S;M;L')).toEqual([
      { p: '时间', v: '10:30' },
      { p: '尺码', v: 'S;M;L' },
    ]);
    expect(parsePv('a#:#x;y#;#b#:#1:2')).toEqual([
      { p: 'a', v: 'x;y' },
      { p: 'b', v: '1:2' },
    ]);
    expect(parsePv('orphan;a:1;;b:2')).toEqual([
      { p: 'orphan', v: '', malformed: true },
      { p: 'a', v: '1' },
      { p: '', v: '', malformed: true },
      { p: 'b', v: '2' },
    ]);
    expect(parsePv('a#:#1#;#lonely')).toEqual([
      { p: 'a', v: '1' },
      { p: 'lonely', v: '', malformed: true },
    ]);
  });
});

describe('values with separators through the model text form', () => {
  it('round-trips through the cleaner and the text form', () => {
    const c = new Cleaner(DEFAULT_NORMALISE);
    const { kept } = c.clean(parsePv('时间#:#10:30#;#尺码#:#S;M#;#型号#:#A#1#;#规格：大#:#x'));
    expect(kept).toEqual([
      { p: '时间', v: '10：30' },
      { p: '尺码', v: 'S；M' },
      { p: '型号', v: 'A＃1' },
      { p: '规格：大', v: 'x' },
    ]);
    expect(parsePv(formatPv(kept))).toEqual(kept);
  });

  it.skipIf(!existsSync(VOCAB))('keeps the BERT separator ids 131/132 one per pair (needs ../shared/data/k3m-golden/vocab.txt)', async () => {
    const { Tokenizer, WordPiece, bertNormalizer, bertPreTokenizer } = await import('tokenizers');
    const tok = new Tokenizer(await WordPiece.fromFile(VOCAB, { unkToken: '[UNK]' }));
    tok.setNormalizer(bertNormalizer());
    tok.setPreTokenizer(bertPreTokenizer());
    const c = new Cleaner(DEFAULT_NORMALISE);
    const { kept } = c.clean(parsePv('时间:10:30;尺码:S;M;规格：大:x;颜色:红'));
    const ids = (await tok.encode(formatPv(kept))).getIds();
    expect(ids.filter((i) => i === 131)).toHaveLength(kept.length);
    expect(ids.filter((i) => i === 132)).toHaveLength(kept.length);
    expect(ids).toContain(8039); // the rewritten ':' is the full-width token, not a separator
  });
});
if (!existsSync(VOCAB)) console.warn(`skipping the tokenizer alignment test: ${VOCAB} is absent`);

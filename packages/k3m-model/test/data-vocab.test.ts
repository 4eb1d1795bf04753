/**
 * vocab.txt codec and the vocabulary built from training text: reference reading rules,
 * determinism, coverage (no [UNK] on the texts it was built from), round trip through a file.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { goldenFiles, makeRecord, readPreprocessGolden } from '../src/data/testing.ts';
import { K3mTokenizer } from '../src/data/tokenizer.ts';
import { buildVocab, formatVocab, parseVocab, recordTexts, writeVocabFile } from '../src/data/vocab.ts';

const repoRoot = resolve(fileURLToPath(import.meta.url), '../../../..');
const GOLDEN = resolve(repoRoot, '../shared/data/k3m-golden');
const golden = goldenFiles(GOLDEN, ['preprocess.jsonl']);
if (!golden.ok) console.warn(`skipping vocabulary coverage of the sample texts: ${golden.reason}`);

const TEXTS = ['品牌:Apple;型号:iPhone 12;', 'iPhone 12 手机壳 透明', '颜色分类:黑色;适用:iphone12', 'Café crème 2020款'];

describe('vocab.txt codec', () => {
  it('reads ids by line, strips only the newline, lets a duplicate keep its last id', () => {
    expect(parseVocab('a\nb \nc\n')).toEqual(['a', 'b ', 'c']);
    expect(parseVocab(formatVocab(['x', '##y']))).toEqual(['x', '##y']);
    expect(() => formatVocab(['a\nb'])).toThrow(/newline/);
    const tok = K3mTokenizer.fromVocab(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', ':', ';', '[MASK]']);
    expect(tok.ids.mask).toBe(7);
  });

  it('names the special tokens a vocabulary lacks', () => {
    expect(() => K3mTokenizer.fromVocab(['[PAD]', '[UNK]', 'a'])).toThrow(/"\[CLS\]", "\[SEP\]", "\[MASK\]", ":", ";"/);
  });

  it('keeps a literal special token in the text as one token, as pytorch_transformers', async () => {
    const tok = K3mTokenizer.fromVocab(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', ':', ';', 'a']);
    expect(await tok.encode('a [MASK] a')).toEqual([7, 4, 7]);
    expect(await tok.encode('')).toEqual([]);
  });
});

describe('buildVocab', () => {
  it('puts the special tokens first and records their ids', async () => {
    const v = await buildVocab(TEXTS);
    expect(v.tokens.slice(0, 7)).toEqual(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', ':', ';']);
    expect(v.ids).toEqual({ pad: 0, unk: 1, cls: 2, sep: 3, mask: 4, colon: 5, semicolon: 6 });
  });

  it('is deterministic and independent of text order', async () => {
    const a = await buildVocab(TEXTS, { minFrequency: 1 });
    const b = await buildVocab([...TEXTS].reverse(), { minFrequency: 1 });
    expect(b.tokens).toEqual(a.tokens);
    expect(new Set(a.tokens).size).toBe(a.tokens.length);
  });

  it('holds every character seen, frequent whole words, and tokenises its texts without [UNK]', async () => {
    const v = await buildVocab(TEXTS, { minFrequency: 2 });
    for (const c of '品牌型号手机壳透明颜色分类黑适用款') expect(v.tokens).toContain(c);
    expect(v.tokens).toContain('iphone');
    // accents stripped and lower-cased, as the tokenizer sees the text
    expect(v.tokens).toContain('c');
    expect(v.tokens.slice(7).filter((t) => /[éA-Z]/.test(t))).toEqual([]);
    expect(v.tokens).not.toContain('apple'); // seen once
    const tok = K3mTokenizer.fromVocab(v.tokens);
    for (const t of TEXTS) expect(await tok.encode(t)).not.toContain(tok.ids.unk);
    expect(await tok.tokenize('apple')).toEqual(['a', '##p', '##p', '##l', '##e']);
  });

  it('fills whole words only up to maxSize and builds from records', async () => {
    const v = await buildVocab(recordTexts([makeRecord({ caption: 'aa bb aa bb cc cc', pv: '色:红;', numBoxes: 0 })]), { maxSize: 16, minFrequency: 2 });
    expect(v.tokens.length).toBeLessThanOrEqual(16);
    expect(v.stats.texts).toBe(2);
    expect(v.stats.wholeWords + v.stats.wholeWordsDropped).toBe(3);
  });

  it.skipIf(!golden.ok)('covers the 400 sample titles and knowledge strings without [UNK], through a written vocab.txt', async () => {
    const rows = await readPreprocessGolden(GOLDEN);
    const texts = rows.flatMap((r) => [r.title, r.pv]);
    const v = await buildVocab(texts);
    const dir = await mkdtemp(join(tmpdir(), 'k3m-vocab-'));
    try {
      await writeVocabFile(join(dir, 'vocab.txt'), v.tokens);
      const tok = await K3mTokenizer.fromVocabFile(join(dir, 'vocab.txt'));
      expect(tok.vocabSize).toBe(v.tokens.length);
      const ids = await tok.encodeBatch(texts);
      expect(ids.flat().filter((x) => x === tok.ids.unk)).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

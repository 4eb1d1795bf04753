/**
 * @file vocab.txt, both directions, and the vocabulary built from training text when no
 * vocab.txt is given (`k3m-model build-vocab`).
 *
 * Format: UTF-8, one token per line, id = 0-based line number; `##x` marks a word-internal
 * piece. Reading follows the reference (pytorch_transformers `load_vocab`): only the newline is
 * stripped, a duplicated token keeps its last id. Writing ends every token with `\n`.
 *
 * Built vocabularies put [PAD] [UNK] [CLS] [SEP] [MASK] at 0..4 and `:` `;` at 5, 6; then every
 * character seen (as a word start), then `##c` for every character seen inside a word, then
 * whole words of two or more characters seen at least `minFrequency` times (ASCII words such as
 * model numbers and brands; Chinese text is split into single characters by the normaliser) by
 * falling frequency, up to `maxSize`. Ties and the character sets are ordered by UTF-16 code
 * units, so the same texts always give the same file. Every text seen therefore tokenises without
 * [UNK].
 */
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '@k3m-kit/core';
import type { K3mRecord } from '@k3m-kit/lmdb-writer';
import { bertNormalizer, bertPreTokenizer } from 'tokenizers';
import { SPECIAL_TOKENS, specialIdsOf, type SpecialIds } from './special-tokens.ts';

/** Tokens of a vocab.txt text, id = index. A final newline does not add an empty token. */
export function parseVocab(text: string): string[] {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines;
}

/** vocab.txt text of `tokens`. */
export function formatVocab(tokens: readonly string[]): string {
  for (const [i, t] of tokens.entries()) {
    if (t.includes('\n') || t === '') throw new Error(`vocab token ${i} ${JSON.stringify(t)} is empty or holds a newline`);
  }
  return tokens.map((t) => t + '\n').join('');
}

export async function readVocabFile(path: string): Promise<string[]> {
  return parseVocab(await readFile(path, 'utf8'));
}

/** Writes vocab.txt atomically. */
export async function writeVocabFile(path: string, tokens: readonly string[]): Promise<void> {
  await writeFileAtomic(path, formatVocab(tokens));
}

export interface BuildVocabOptions {
  /** Upper bound on the size; characters are always kept, whole words fill what is left (default 21128). */
  maxSize?: number;
  /** Occurrences a multi-character word needs to become a piece of its own (default 2). */
  minFrequency?: number;
  /** Must match the tokenizer's `lowercase` (default true). */
  lowercase?: boolean;
}

export interface BuiltVocab {
  /** id to token, ready for {@link writeVocabFile} */
  tokens: string[];
  ids: SpecialIds;
  stats: { texts: number; words: number; chars: number; continuations: number; wholeWords: number; wholeWordsDropped: number };
}

const byCodeUnits = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * A WordPiece vocabulary covering every character of `texts` (normalised and split as the
 * tokenizer does).
 * @example
 * const v = await buildVocab(['省份:河北省;', 'iPhone 12'], { minFrequency: 1 });
 * v.tokens.slice(0, 7); // ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', ':', ';']
 */
export async function buildVocab(texts: Iterable<string> | AsyncIterable<string>, opts: BuildVocabOptions = {}): Promise<BuiltVocab> {
  const maxSize = opts.maxSize ?? 21128;
  const minFrequency = opts.minFrequency ?? 2;
  const lowercase = opts.lowercase ?? true;
  const normalizer = bertNormalizer({ cleanText: true, handleChineseChars: true, stripAccents: lowercase, lowercase });
  const preTokenizer = bertPreTokenizer();
  const starts = new Set<string>();
  const inner = new Set<string>();
  const words = new Map<string, number>();
  let nTexts = 0;
  for await (const text of texts) {
    nTexts++;
    if (!text) continue;
    for (const [word] of preTokenizer.preTokenizeString(normalizer.normalizeString(text))) {
      const chars = [...word];
      starts.add(chars[0]!);
      for (const c of chars.slice(1)) inner.add(c);
      if (chars.length > 1) words.set(word, (words.get(word) ?? 0) + 1);
    }
  }
  const head: string[] = Object.values(SPECIAL_TOKENS);
  const taken = new Set<string>(head);
  const tokens = [...head];
  const push = (t: string) => {
    if (!taken.has(t)) {
      taken.add(t);
      tokens.push(t);
    }
  };
  for (const c of [...starts].sort(byCodeUnits)) push(c);
  const nChars = tokens.length - head.length;
  for (const c of [...inner].sort(byCodeUnits)) push('##' + c);
  const nCont = tokens.length - head.length - nChars;
  const frequent = [...words]
    .filter(([w, n]) => n >= minFrequency && !taken.has(w))
    .sort((a, b) => b[1] - a[1] || byCodeUnits(a[0], b[0]));
  const room = Math.max(0, maxSize - tokens.length);
  for (const [w] of frequent.slice(0, room)) push(w);
  const index = new Map(tokens.map((t, i) => [t, i]));
  return {
    tokens,
    ids: specialIdsOf(index),
    stats: {
      texts: nTexts,
      words: words.size,
      chars: nChars,
      continuations: nCont,
      wholeWords: Math.min(room, frequent.length),
      wholeWordsDropped: Math.max(0, frequent.length - room),
    },
  };
}

/** The texts a vocabulary is built from: each record's title and knowledge string. */
export async function* recordTexts(records: AsyncIterable<K3mRecord> | Iterable<K3mRecord>, onUsed?: (r: K3mRecord) => void): AsyncGenerator<string> {
  for await (const r of records) {
    yield r.caption;
    yield r.pv;
    // Resumed only when the consumer asks for more: both texts of `r` were taken.
    onUsed?.(r);
  }
}

/**
 * @file The special tokens of the BERT vocabulary and their ids, shared by the tokenizer and the
 * vocabulary builder (kept apart so neither imports the other).
 */

/** The tokens whose ids the data path needs; bert-base-chinese gives 0/100/101/102/103/131/132. */
export const SPECIAL_TOKENS = Object.freeze({
  pad: '[PAD]',
  unk: '[UNK]',
  cls: '[CLS]',
  sep: '[SEP]',
  mask: '[MASK]',
  colon: ':',
  semicolon: ';',
} as const);

export type SpecialIds = { readonly [K in keyof typeof SPECIAL_TOKENS]: number };

/** Looks the special tokens up in an id table; names every one that is missing. */
export function specialIdsOf(index: ReadonlyMap<string, number>): SpecialIds {
  const missing = Object.values(SPECIAL_TOKENS).filter((t) => !index.has(t));
  if (missing.length) throw new Error(`vocabulary lacks the required tokens ${missing.map((t) => JSON.stringify(t)).join(', ')}`);
  const out = {} as Record<keyof typeof SPECIAL_TOKENS, number>;
  for (const [k, t] of Object.entries(SPECIAL_TOKENS)) out[k as keyof typeof SPECIAL_TOKENS] = index.get(t)!;
  return Object.freeze(out);
}

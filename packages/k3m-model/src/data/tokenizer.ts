/**
 * @file BERT Chinese WordPiece tokenisation (k3m-reference.md 3.2) through Hugging Face's
 * `tokenizers` binding: BertNormalizer (clean text, CJK characters spaced, lower-case, strip
 * accents), BertPreTokenizer (whitespace and punctuation split), greedy longest-match WordPiece
 * with `##` continuations and `[UNK]`. {@link K3mTokenizer.encode} adds no special tokens, as
 * the reference's `tokenizer.encode`.
 *
 * Literal special tokens in the text (`[MASK]`, case-sensitive) stay one token, as
 * pytorch_transformers splits on them first.
 *
 * The one thing taken out of the binding's hands is reading vocab.txt: `WordPiece.fromFile`
 * trims all trailing whitespace from each line, while the reference (pytorch_transformers
 * `load_vocab`) strips only the newline. {@link parseVocab} reads it the reference's way and the
 * model is built from that table, so ids are line numbers exactly as in the reference.
 */
import { Tokenizer, WordPiece, bertNormalizer, bertPreTokenizer } from 'tokenizers';
import { SPECIAL_TOKENS, specialIdsOf, type SpecialIds } from './special-tokens.ts';
import { parseVocab, readVocabFile } from './vocab.ts';

export { SPECIAL_TOKENS, specialIdsOf, type SpecialIds } from './special-tokens.ts';

export interface TokenizerOptions {
  /** Lower-case and strip accents (BERT's `do_lower_case`, default true as the reference). */
  lowercase?: boolean;
}

/** What preprocessing needs from a vocabulary: the special ids and the size random ids come from. */
export interface VocabInfo {
  readonly ids: SpecialIds;
  /** Random replacement ids are drawn from [0, vocabSize) (reference: `len(tokenizer)` = 21128). */
  readonly vocabSize: number;
}

/**
 * BERT WordPiece tokenizer over a vocab.txt.
 * @example
 * const tok = await K3mTokenizer.fromVocabFile('vocab.txt');
 * await tok.encode('省份:河北省;'); // [4689, 819, 131, 3777, 1266, 4689, 132]
 * tok.ids.mask; // 103
 */
export class K3mTokenizer implements VocabInfo {
  readonly ids: SpecialIds;
  readonly vocabSize: number;
  private readonly tokenizer: Tokenizer;

  private constructor(
    /** id to token (line order of vocab.txt) */
    readonly tokens: readonly string[],
    opts: TokenizerOptions,
  ) {
    const index = new Map<string, number>();
    // A duplicated line keeps its last id, as the reference's dict does.
    tokens.forEach((t, i) => index.set(t, i));
    this.ids = specialIdsOf(index);
    this.vocabSize = tokens.length;
    const lowercase = opts.lowercase ?? true;
    this.tokenizer = new Tokenizer(
      WordPiece.init(Object.fromEntries(index), { unkToken: SPECIAL_TOKENS.unk, continuingSubwordPrefix: '##', maxInputCharsPerWord: 100 }),
    );
    this.tokenizer.setNormalizer(bertNormalizer({ cleanText: true, handleChineseChars: true, stripAccents: lowercase, lowercase }));
    this.tokenizer.setPreTokenizer(bertPreTokenizer());
    // pytorch_transformers splits the text on its special tokens before tokenising, so a literal
    // `[MASK]` in a title is id 103, not `[ ma ##sk ]`.
    this.tokenizer.addSpecialTokens([SPECIAL_TOKENS.pad, SPECIAL_TOKENS.unk, SPECIAL_TOKENS.cls, SPECIAL_TOKENS.sep, SPECIAL_TOKENS.mask]);
  }

  static async fromVocabFile(path: string, opts: TokenizerOptions = {}): Promise<K3mTokenizer> {
    return new K3mTokenizer(await readVocabFile(path), opts);
  }

  /** From vocab.txt text or its token list (id = position). */
  static fromVocab(vocab: string | readonly string[], opts: TokenizerOptions = {}): K3mTokenizer {
    return new K3mTokenizer(typeof vocab === 'string' ? parseVocab(vocab) : [...vocab], opts);
  }

  /** Word-piece ids of `text`, no special tokens; '' gives []. */
  async encode(text: string): Promise<number[]> {
    if (!text) return [];
    return (await this.tokenizer.encode(text, null, { addSpecialTokens: false })).getIds();
  }

  async encodeBatch(texts: readonly string[]): Promise<number[][]> {
    if (!texts.length) return [];
    const enc = await this.tokenizer.encodeBatch([...texts], { addSpecialTokens: false });
    return enc.map((e, i) => (texts[i] ? e.getIds() : []));
  }

  /** Word-piece strings of `text` (for inspection and vocabulary checks). */
  async tokenize(text: string): Promise<string[]> {
    if (!text) return [];
    return (await this.tokenizer.encode(text, null, { addSpecialTokens: false })).getTokens();
  }
}

/**
 * @file The one interface every input format is read through: a {@link FormatReader} turns the
 * run's inputs into a stream of {@link SourceRecord}s, each an item ready for segmenting or a
 * reject, and each carrying the file it came from and its position there. Readers count every
 * record they produce in the run's ledger as they read it (`in` is counted at the source).
 */
import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import { IoError, type Ledger } from '@k3m-kit/core';
import type { KnowledgePair } from '../codecs/raw-tsv.ts';
import type { ItemExtra } from '../codecs/item-extra.ts';

/** One input file and its split role; no role means train, or hash-split with --val-ratio. */
export const InputSchema = z.object({ path: z.string().min(1), split: z.enum(['train', 'val']).optional() });
export type InputSpec = z.infer<typeof InputSchema>;

/**
 * Parses `FILE[:train|:val]`.
 * @example parseInputSpec('raw/valid.tsv:val') // { path: 'raw/valid.tsv', split: 'val' }
 */
export function parseInputSpec(text: string): InputSpec {
  const m = /^(.*):(train|val)$/.exec(text);
  return m ? { path: m[1]!, split: m[2] as 'train' | 'val' } : { path: text };
}

/**
 * Where a record sits in its source: `line` for line formats (and JSON, the line its key is on),
 * `entry` for the n-th member of a JSON object or of an archive, `member` for an archive
 * member's name.
 */
export interface Position {
  line?: number;
  entry?: number;
  member?: string;
}

/** Image bytes read out of an archive, or why the item has none (it stays, image-missing). */
export type InlineImage = { ok: true; body: Buffer; ref: string } | { ok: false; reason: string; detail: string };

/** A valid item, as every format hands it to segmenting. */
export interface SourceItem {
  ok: true;
  source: string;
  pos: Position;
  itemId: string;
  /** What the duplicate check compares: the item id, or id + caption source for TaiSu `both`. */
  dedupKey: string;
  title: string;
  /** Image references tried in order (a second one is a mirror, e.g. Product1M's OSS URL). */
  imageRefs: readonly string[];
  /** Set when the image does not come from `imageRefs` (TaiSu archives). */
  image?: InlineImage;
  /** Directory relative references resolve against. */
  baseDir: string;
  pairs: readonly KnowledgePair[];
  malformedPairs: number;
  category: string;
  extra?: ItemExtra;
}

/** A record that cannot become an item. */
export interface SourceReject {
  ok: false;
  source: string;
  pos: Position;
  reason: string;
  detail: string;
  id?: string;
}

export type SourceRecord = SourceItem | SourceReject;

/** A record and the input whose split role it takes. */
export interface RoutedRecord {
  input: InputSpec;
  record: SourceRecord;
}

/** What a reader gets besides its inputs. */
export interface ReadContext {
  /** Readers call `ledger.read()` once per record, as they read it. */
  ledger: Ledger;
  /** A directory this run may use for scratch files (removed after the parse pass). */
  tempDir: string;
  /** Which TaiSu caption(s) make the text records. */
  caption: CaptionChoice;
  /** Largest archive member taken as an image, as `--max-bytes` for downloads. */
  maxBytes: number;
}

/** TaiSu's two captions: `w` web text, `g` generated; `both` gives two text records per image. */
export const CAPTION_CHOICES = Object.freeze({
  w: 'the web caption',
  g: 'the generated caption',
  both: 'two text records per image, one per caption',
});
export type CaptionChoice = keyof typeof CAPTION_CHOICES;

/** Reads one format. `inputs` are all the run's inputs, in command-line order. */
export interface FormatReader {
  /** Whether items carry extra fields (then every segment gets an `item_extra<seg>.jsonl`). */
  readonly extraFields: boolean;
  read(inputs: readonly InputSpec[], ctx: ReadContext): AsyncGenerator<RoutedRecord>;
}

/** Flattens a position into a reject or status line (`line`, `entry`, `member`, in that order). */
export function positionFields(pos: Position): Position {
  return {
    ...(pos.line !== undefined ? { line: pos.line } : {}),
    ...(pos.entry !== undefined ? { entry: pos.entry } : {}),
    ...(pos.member !== undefined ? { member: pos.member } : {}),
  };
}

/** Where a per-file decoder places a record: its line, and its ordinal for JSON objects. */
interface At {
  line?: number;
  entry?: number;
}

/**
 * The item fields of a record that carries no knowledge pairs (P9D, Product1M: knowledge-missing
 * items), its id being its duplicate key.
 */
export function knowledgeFreeItem(r: { itemId: string; title: string; imageRefs: readonly string[] }, category: string, extra: ItemExtra): Omit<SourceItem, 'ok' | 'source' | 'pos' | 'baseDir'> {
  return { itemId: r.itemId, dedupKey: r.itemId, title: r.title, imageRefs: r.imageRefs, pairs: [], malformedPairs: 0, category, extra };
}

/** What a per-file decoder yields: a record, or a reject, each with its position. */
export type DecodedEntry<T> = At & (({ ok: true } & T) | { ok: false; reason: string; detail: string; id?: string });

/**
 * The loop every file-per-input format shares: each input's file through `decode`, in
 * command-line order, each record counted as read, rejects passed on with their position, and
 * an I/O failure named with its file. `toItem` maps a good record to the item's own fields.
 */
export async function* readFiles<T>(
  inputs: readonly InputSpec[],
  ctx: ReadContext,
  decode: (path: string) => AsyncIterable<DecodedEntry<T>>,
  toItem: (r: T) => Omit<SourceItem, 'ok' | 'source' | 'pos' | 'baseDir'>,
): AsyncGenerator<RoutedRecord> {
  for (const input of inputs) {
    const source = input.path;
    const baseDir = dirname(resolve(source));
    try {
      for await (const r of decode(source)) {
        ctx.ledger.read();
        const pos: Position = { ...(r.line !== undefined ? { line: r.line } : {}), ...(r.entry !== undefined ? { entry: r.entry } : {}) };
        if (!r.ok) {
          yield { input, record: { ok: false, source, pos, reason: r.reason, detail: r.detail, ...(r.id !== undefined ? { id: r.id } : {}) } };
          continue;
        }
        yield { input, record: { ok: true, source, pos, baseDir, ...toItem(r) } };
      }
    } catch (e) {
      throw e instanceof IoError ? e : new IoError(source, e);
    }
  }
}

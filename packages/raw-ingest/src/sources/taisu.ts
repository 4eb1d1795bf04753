/**
 * @file TaiSu as a {@link FormatReader}: the captions JSON (one or more inputs, each with its
 * split role) and the image archives (the other inputs, `.tar` or `.tgz`, in command-line order).
 *
 * Order of work:
 * 1. The caption pass streams every captions file into a {@link CaptionStore} on disk. Each
 *    chosen caption (`--caption w|g|both`) of an entry is one text record, counted here; an
 *    entry that is not valid, a repeated id and a chosen caption that is absent are rejected
 *    now.
 * 2. The archive pass streams each archive once. A member that claims a stored entry yields
 *    that entry's item(s) with the member's bytes as the image, so items come in archive
 *    order. Members that cannot serve are records of their own and rejected: `not-an-image` (a
 *    name or bytes that are not an image, or not a regular file), `no-caption`,
 *    `duplicate-member` (an id a member already served), and `truncated-archive` /
 *    `corrupt-archive` for the rest of a broken archive. A member that is not an image still
 *    claims its entry, whose items then keep no image (reason `not-an-image`).
 * 3. Entries no member claimed yield their items last, in captions order, image-missing
 *    (`not-in-archives`): K3M is built for items without an image.
 *
 * Text records of one image share the TaiSu id as item id; with `both`, their duplicate check
 * key adds the caption source, and the caption source travels as an extra field.
 */
import { statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { IoError, UsageError } from '@k3m-kit/core';
import { decodeTaisuCaptionsFile } from '../codecs/taisu-captions.ts';
import { ARCHIVE_NAME, IMAGE_MEMBER_NAME, isGzipFile, looksLikeImage, readTaisuArchive, type ArchiveMember } from '../codecs/taisu-archive.ts';
import type { InputSpec } from './source.ts';
import { CaptionStore, type StoredCaptions } from './caption-store.ts';
import type { CaptionChoice, FormatReader, InlineImage, ReadContext, RoutedRecord, SourceItem } from './source.ts';

/** The default caption: the web text is the original one. */
export const DEFAULT_CAPTION: CaptionChoice = 'w';

const SOURCES: Record<CaptionChoice, readonly ('w' | 'g')[]> = { w: ['w'], g: ['g'], both: ['w', 'g'] };

/**
 * Whether an input is an image archive: by name (`.tar`, `.tgz`, `.tar.gz`), else by the gzip
 * magic bytes; a pipe is looked at by name only (peeking would eat its bytes).
 */
export function isArchiveInput(path: string): boolean {
  if (ARCHIVE_NAME.test(path)) return true;
  return !statSync(path, { throwIfNoEntry: false })?.isFIFO() && isGzipFile(path);
}

export const taisuReader: FormatReader = {
  extraFields: true,
  async *read(inputs, ctx): AsyncGenerator<RoutedRecord> {
    const captionInputs = inputs.filter((i) => !isArchiveInput(i.path));
    const archives = inputs.filter((i) => isArchiveInput(i.path));
    if (captionInputs.length === 0) throw new UsageError('--input: --format taisu needs the captions JSON as an --input besides the archives');
    const withRole = archives.find((a) => a.split !== undefined);
    if (withRole) throw new UsageError(`--input ${withRole.path}:${withRole.split}: a split role belongs on the captions JSON, not on an archive`);
    const sources = SOURCES[ctx.caption];
    const store = CaptionStore.create(join(ctx.tempDir, 'taisu-captions.jsonl'));
    try {
      yield* captionPass(captionInputs, store, sources, ctx);
      await store.seal();
      for (const archive of archives) yield* archivePass(archive, captionInputs, store, sources, ctx);
      for await (const c of store.unclaimed()) {
        const image: InlineImage = { ok: false, reason: 'not-in-archives', detail: `no member ${c.id}.<jpg|png|...> in the ${archives.length} archive(s)` };
        yield* itemsOf(c, captionInputs[c.file]!, sources, image);
      }
    } finally {
      await store.close();
    }
  },
};

async function* captionPass(inputs: readonly InputSpec[], store: CaptionStore, sources: readonly ('w' | 'g')[], ctx: ReadContext): AsyncGenerator<RoutedRecord> {
  for (const [file, input] of inputs.entries()) {
    const source = input.path;
    try {
      for await (const r of decodeTaisuCaptionsFile(source)) {
        const pos = { line: r.line, entry: r.entry };
        if (!r.ok) {
          ctx.ledger.read();
          yield { input, record: { ok: false, source, pos, reason: r.reason, detail: r.detail, ...(r.id !== undefined ? { id: r.id } : {}) } };
          continue;
        }
        ctx.ledger.read(sources.length);
        if (store.has(r.id)) {
          for (const _ of sources) yield { input, record: { ok: false, source, pos, reason: 'duplicate-id', detail: 'the id was already seen (the first one wins)', id: r.id } };
          continue;
        }
        for (const s of sources) {
          if (r[s] === undefined) yield { input, record: { ok: false, source, pos, reason: 'no-caption', detail: `the entry has no "${s}" caption`, id: r.id } };
        }
        if (sources.some((s) => r[s] !== undefined)) {
          await store.add({ file, line: r.line, entry: r.entry, id: r.id, ...(r.w !== undefined ? { w: r.w } : {}), ...(r.g !== undefined ? { g: r.g } : {}) });
        }
      }
    } catch (e) {
      throw e instanceof IoError || e instanceof UsageError ? e : new IoError(source, e);
    }
  }
}

async function* archivePass(
  archive: InputSpec,
  captionInputs: readonly InputSpec[],
  store: CaptionStore,
  sources: readonly ('w' | 'g')[],
  ctx: ReadContext,
): AsyncGenerator<RoutedRecord> {
  const source = archive.path;
  const reject = (pos: { entry: number; member?: string }, reason: string, detail: string, id?: string): RoutedRecord => {
    ctx.ledger.read();
    return { input: archive, record: { ok: false, source, pos, reason, detail, ...(id !== undefined ? { id } : {}) } };
  };
  try {
    for await (const m of readTaisuArchive(source, { maxBytes: ctx.maxBytes })) {
      if (m.kind === 'broken') {
        yield reject({ entry: m.entry, ...(m.member !== undefined ? { member: m.member } : {}) }, m.reason, m.detail);
        continue;
      }
      const pos = { entry: m.entry, member: m.name };
      const notImage = whyNotImage(m);
      const stored = !notImage || IMAGE_MEMBER_NAME.test(m.name) ? await store.lookup(m.id) : undefined;
      if (notImage && !stored) {
        yield reject(pos, 'not-an-image', notImage, m.id);
        continue;
      }
      if (!stored) {
        yield reject(pos, 'no-caption', `no entry ${JSON.stringify(m.id)} in the captions file(s)`, m.id);
        continue;
      }
      if (!store.claim(stored.index)) {
        yield reject(pos, 'duplicate-member', `a second member for id ${m.id} (the first one wins)`, m.id);
        continue;
      }
      const ref = `${basename(source)}:${m.name}`;
      let image: InlineImage;
      if (notImage) {
        yield reject(pos, 'not-an-image', notImage, m.id);
        image = { ok: false, reason: 'not-an-image', detail: `${ref}: ${notImage} (rejected as a member)` };
      } else if (m.body === undefined) {
        image = { ok: false, reason: 'too-large', detail: `${ref}: ${m.size} bytes > --max-bytes ${ctx.maxBytes}` };
      } else {
        image = { ok: true, body: m.body, ref };
      }
      yield* itemsOf(stored, captionInputs[stored.file]!, sources, image);
    }
  } catch (e) {
    throw e instanceof IoError ? e : new IoError(source, e);
  }
}

/** Why a member cannot be an image, or undefined when it may be one (sharp decides later). */
function whyNotImage(m: ArchiveMember): string | undefined {
  if (m.type !== 'file' && m.type !== 'contiguous-file') return `member type ${m.type}, not a file`;
  if (!IMAGE_MEMBER_NAME.test(m.name)) return `name ${m.name} is not <id>.jpg (or .jpeg, .png, .webp, .gif, .bmp)`;
  if (m.body !== undefined && !looksLikeImage(m.body)) return `bytes are not an image (starts ${m.body.subarray(0, 8).toString('hex') || 'empty'})`;
  return undefined;
}

/** The text record(s) of one stored entry: one per chosen caption it has. */
function* itemsOf(c: StoredCaptions, input: InputSpec, sources: readonly ('w' | 'g')[], image: InlineImage): Generator<RoutedRecord> {
  for (const s of sources) {
    const title = c[s];
    if (title === undefined) continue;
    const item: SourceItem = {
      ok: true,
      source: input.path,
      pos: { line: c.line, entry: c.entry },
      itemId: c.id,
      dedupKey: sources.length > 1 ? `${c.id}\u0000${s}` : c.id,
      title,
      imageRefs: [],
      image,
      baseDir: dirname(resolve(input.path)),
      pairs: [],
      malformedPairs: 0,
      category: '',
      extra: { captionSource: s },
    };
    yield { input, record: item };
  }
}

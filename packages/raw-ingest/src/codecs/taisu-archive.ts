/**
 * @file TaiSu's image archives (ksOAn6g5/TaiSu README: the images come as 30+ parts,
 * `baidu_images*.tgz`, which its README un-gzips to `.tar` with pigz): reader and writer.
 *
 * Layout: a POSIX tar archive, plain (`.tar`) or gzip-compressed (`.tgz`, `.tar.gz`; told by the
 * gzip magic bytes, not the name), whose file members are `<id>.<ext>` (`.jpg` in the release;
 * a directory prefix is allowed), `<id>` being the key in the captions file. Members are read
 * straight out of the archive as it streams (tar-stream, with zlib for gzip): nothing is unpacked
 * to disk, and one member is in memory at a time.
 *
 * What the reader hands out, in archive order: every member that is not a directory (its
 * ordinal `entry`, name, id, type and bytes; no bytes for a non-file or one over `maxBytes`), and,
 * when the archive breaks off or is corrupt, one final `broken` event saying where.
 */
import { createReadStream, openSync, readSync, closeSync } from 'node:fs';
import { basename } from 'node:path';
import { PassThrough, Readable, pipeline } from 'node:stream';
import { createGunzip, createGzip } from 'node:zlib';
import tar from 'tar-stream';

/** File names taken for archives when sniffing inputs. */
export const ARCHIVE_NAME = /\.(tar|tgz|tar\.gz)$/i;
/** Member names that name an image. */
export const IMAGE_MEMBER_NAME = /\.(jpe?g|png|webp|gif|bmp)$/i;

export interface ArchiveMember {
  kind: 'member';
  /** 1-based ordinal among the archive's non-directory members. */
  entry: number;
  name: string;
  /** The name without directory and extension. */
  id: string;
  /** tar-stream's member type (`file`, `symlink`, ...). */
  type: string;
  size: number;
  /** The bytes; absent for a non-file member or one over `maxBytes`. */
  body?: Buffer;
}

/** The archive ended inside a member or is corrupt from here on. */
export interface ArchiveBreak {
  kind: 'broken';
  /** The ordinal of the member being read (or that would have come next). */
  entry: number;
  /** The member being read when it broke, if any. */
  member?: string;
  reason: 'truncated-archive' | 'corrupt-archive';
  detail: string;
}

export type ArchiveEvent = ArchiveMember | ArchiveBreak;

/** The `<id>` of `dir/<id>.jpg`. */
export function archiveMemberId(name: string): string {
  const base = basename(name);
  const dot = base.lastIndexOf('.');
  return dot > 0 ? base.slice(0, dot) : base;
}

/** Whether `bytes` start like an image sharp can decode (JPEG, PNG, GIF, WebP, BMP, TIFF). */
export function looksLikeImage(b: Uint8Array): boolean {
  const at = (i: number, ...xs: number[]) => xs.every((x, k) => b[i + k] === x);
  return (
    at(0, 0xff, 0xd8, 0xff) ||
    at(0, 0x89, 0x50, 0x4e, 0x47) ||
    at(0, 0x47, 0x49, 0x46, 0x38) ||
    (at(0, 0x52, 0x49, 0x46, 0x46) && at(8, 0x57, 0x45, 0x42, 0x50)) ||
    at(0, 0x42, 0x4d) ||
    at(0, 0x49, 0x49, 0x2a, 0x00) ||
    at(0, 0x4d, 0x4d, 0x00, 0x2a)
  );
}

/** Whether the file starts with the gzip magic bytes. */
export function isGzipFile(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(2);
    return readSync(fd, b, 0, 2, 0) === 2 && b[0] === 0x1f && b[1] === 0x8b;
  } finally {
    closeSync(fd);
  }
}

/**
 * Streams the members of the archive at `path`. A system error (the file cannot be read) is
 * thrown; a broken archive ends the stream with one {@link ArchiveBreak}.
 * @example for await (const m of readTaisuArchive('images-0.tgz', { maxBytes: 20e6 })) if (m.kind === 'member') use(m.body)
 */
export async function* readTaisuArchive(path: string, opts: { maxBytes: number }): AsyncGenerator<ArchiveEvent> {
  const extract = tar.extract();
  // The file is opened once and its first bytes decide on gzip, so a pipe works as well as a file.
  const { gzip, bytes } = await sniffGzip(createReadStream(path));
  // Errors of any stage destroy the extractor, so they surface in the loop below.
  if (gzip) pipeline(bytes, createGunzip(), extract, () => undefined);
  else pipeline(bytes, extract, () => undefined);
  let entry = 0;
  let current: string | undefined;
  try {
    for await (const e of extract) {
      const h = e.header;
      if (h.type === 'directory') {
        e.resume();
        continue;
      }
      entry++;
      current = h.name;
      const base = { kind: 'member' as const, entry, name: h.name, id: archiveMemberId(h.name), type: h.type ?? 'file', size: h.size ?? 0 };
      if ((h.type !== 'file' && h.type !== 'contiguous-file') || base.size > opts.maxBytes) {
        e.resume();
        await new Promise<void>((done, fail) => e.once('end', done).once('error', fail));
        current = undefined;
        yield base;
        continue;
      }
      const chunks: Buffer[] = [];
      for await (const c of e as AsyncIterable<Buffer>) chunks.push(c);
      current = undefined;
      yield { ...base, body: Buffer.concat(chunks) };
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).syscall !== undefined) throw err;
    const message = (err as Error).message;
    yield {
      kind: 'broken',
      entry: current === undefined ? entry + 1 : entry,
      ...(current !== undefined ? { member: current } : {}),
      reason: /unexpected end/i.test(message) ? 'truncated-archive' : 'corrupt-archive',
      detail: current === undefined ? `after ${entry} member(s): ${message}` : `inside member ${current}: ${message}`,
    };
  }
}

/** Reads the first bytes of `input` and hands back whether they are gzip's, with all the bytes. */
async function sniffGzip(input: Readable): Promise<{ gzip: boolean; bytes: Readable }> {
  const it = (input as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  const head: Buffer[] = [];
  let size = 0;
  let done = false;
  while (size < 2 && !done) {
    const r = await it.next();
    if (r.done) done = true;
    else {
      head.push(r.value);
      size += r.value.length;
    }
  }
  const first = Buffer.concat(head);
  const rest = async function* () {
    if (first.length > 0) yield first;
    if (done) return;
    for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
  };
  return { gzip: first[0] === 0x1f && first[1] === 0x8b, bytes: Readable.from(rest(), { objectMode: false }) };
}

/**
 * A tar (or, with `gzip`, a tgz) stream of the given members, for fixtures and benchmarks.
 * @example await pipeline(encodeTaisuArchive([{ name: 'a.jpg', body }], { gzip: true }), createWriteStream('a.tgz'))
 */
export function encodeTaisuArchive(members: Iterable<{ name: string; body: Buffer }> | AsyncIterable<{ name: string; body: Buffer }>, opts: { gzip: boolean }): Readable {
  const pack = tar.pack();
  const out = opts.gzip ? pack.pipe(createGzip()) : pack.pipe(new PassThrough());
  void (async () => {
    try {
      for await (const m of members) {
        await new Promise<void>((done, fail) => pack.entry({ name: m.name, size: m.body.length, mtime: new Date(0) }, m.body, (e) => (e ? fail(e) : done())));
      }
      pack.finalize();
    } catch (e) {
      out.destroy(e as Error);
    }
  })();
  return out;
}

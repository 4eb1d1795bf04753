/**
 * @file Atomic file writes: write to a temp name beside the target, fsync, rename.
 * A reader (or a resumed run) therefore sees either the old file or the complete new one.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';

/** A temp path in the same directory as `target` (same filesystem, so rename is atomic). */
export function tempPathFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/** Writes `data` to `target` atomically, creating parent directories. */
export async function writeFileAtomic(target: string, data: string | Uint8Array): Promise<void> {
  await mkdir(dirname(target), { recursive: true });
  const tmp = tempPathFor(target);
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, target);
}

/**
 * A streamed file that only appears under its final name after {@link AtomicWriter.commit}.
 * `abort()` removes the temp file. Used for segment files, TSVs and reject logs.
 */
export class AtomicWriter {
  readonly tmp: string;
  private readonly stream: WriteStream;
  private closed = false;

  private constructor(readonly target: string) {
    this.tmp = tempPathFor(target);
    this.stream = createWriteStream(this.tmp);
  }

  static async create(target: string): Promise<AtomicWriter> {
    await mkdir(dirname(target), { recursive: true });
    return new AtomicWriter(target);
  }

  /** Writes a chunk, waiting for drain so memory stays flat on big outputs. */
  async write(chunk: string | Uint8Array): Promise<void> {
    if (!this.stream.write(chunk)) await new Promise<void>((r) => this.stream.once('drain', r));
  }

  private async end(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await new Promise<void>((resolve, reject) => {
      this.stream.once('error', reject);
      this.stream.end(resolve);
    });
  }

  async commit(): Promise<void> {
    await this.end();
    const fh = await open(this.tmp, 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(this.tmp, this.target);
  }

  async abort(): Promise<void> {
    await this.end().catch(() => undefined);
    await rm(this.tmp, { force: true });
  }
}

/**
 * @file Streaming a text file's non-empty lines with their 1-based line numbers: the loop every
 * line codec shares. A read failure becomes an {@link IoError} naming the file; what a caller
 * throws while handling a line reaches it unchanged.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { IoError } from './errors.ts';

/**
 * The non-empty lines of `path` (UTF-8, LF or CRLF), in order. `hint` is added to the message
 * of a read failure (e.g. which command writes the file).
 * @example for await (const { text, line } of readTextLines('kg/knowledge.tsv')) ...
 */
export async function* readTextLines(path: string, hint?: string): AsyncGenerator<{ text: string; line: number }> {
  const stream = createReadStream(path, { encoding: 'utf8' });
  const rl = createInterface({ input: stream, crlfDelay: Infinity });
  let line = 0;
  try {
    for await (const text of rl) {
      line++;
      if (text !== '') yield { text, line };
    }
  } catch (e) {
    throw new IoError(path, hint ? `${(e as Error).message} (${hint})` : e);
  } finally {
    rl.close();
    stream.destroy();
  }
}

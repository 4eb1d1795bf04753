/**
 * @file The K3M raw TSV as a {@link FormatReader}: each input file through the raw-tsv codec,
 * in command-line order.
 */
import { dirname, resolve } from 'node:path';
import { IoError } from '@k3m-kit/core';
import { decodeRawTsvFile } from '../codecs/raw-tsv.ts';
import type { FormatReader, RoutedRecord } from './source.ts';

export const k3mReader: FormatReader = {
  extraFields: false,
  async *read(inputs, ctx): AsyncGenerator<RoutedRecord> {
    for (const input of inputs) {
      const source = input.path;
      const baseDir = dirname(resolve(source));
      try {
        for await (const r of decodeRawTsvFile(source)) {
          ctx.ledger.read();
          const pos = { line: r.line };
          if (!r.ok) {
            yield { input, record: { ok: false, source, pos, reason: r.reason, detail: r.detail, ...(r.id !== undefined ? { id: r.id } : {}) } };
            continue;
          }
          yield {
            input,
            record: {
              ok: true,
              source,
              pos,
              itemId: r.itemId,
              dedupKey: r.itemId,
              title: r.title,
              imageRefs: [r.imageRef],
              baseDir,
              pairs: r.pairs,
              malformedPairs: r.malformedPairs,
              category: r.category,
            },
          };
        }
      } catch (e) {
        throw e instanceof IoError ? e : new IoError(source, e);
      }
    }
  },
};

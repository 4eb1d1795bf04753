/**
 * @file Product1M's `#####` lists as a {@link FormatReader}. Items have no knowledge pairs and no
 * category (knowledge-missing items); the instance labels travel as an extra field.
 */
import { dirname, resolve } from 'node:path';
import { IoError } from '@k3m-kit/core';
import { decodeProduct1mFile } from '../codecs/product1m-txt.ts';
import type { FormatReader, RoutedRecord } from './source.ts';

export const product1mReader: FormatReader = {
  extraFields: true,
  async *read(inputs, ctx): AsyncGenerator<RoutedRecord> {
    for (const input of inputs) {
      const source = input.path;
      const baseDir = dirname(resolve(source));
      try {
        for await (const r of decodeProduct1mFile(source)) {
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
              imageRefs: r.imageRefs,
              baseDir,
              pairs: [],
              malformedPairs: 0,
              category: '',
              extra: { instanceLabels: r.instanceLabels },
            },
          };
        }
      } catch (e) {
        throw e instanceof IoError ? e : new IoError(source, e);
      }
    }
  },
};

/**
 * @file P9D's JSON files as a {@link FormatReader}: `title` is the title, `cate_name` the
 * category, no knowledge pairs (knowledge-missing items); the domain travels as an extra field.
 */
import { dirname, resolve } from 'node:path';
import { IoError } from '@k3m-kit/core';
import { decodeP9dJsonFile } from '../codecs/p9d-json.ts';
import type { FormatReader, RoutedRecord } from './source.ts';

export const p9dReader: FormatReader = {
  extraFields: true,
  async *read(inputs, ctx): AsyncGenerator<RoutedRecord> {
    for (const input of inputs) {
      const source = input.path;
      const baseDir = dirname(resolve(source));
      try {
        for await (const r of decodeP9dJsonFile(source)) {
          ctx.ledger.read();
          const pos = { line: r.line, entry: r.entry };
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
              category: r.category,
              extra: { domain: r.domain },
            },
          };
        }
      } catch (e) {
        throw e instanceof IoError ? e : new IoError(source, e);
      }
    }
  },
};

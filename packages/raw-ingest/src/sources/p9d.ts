/**
 * @file P9D's JSON files as a {@link FormatReader}: `title` is the title, `cate_name` the
 * category, no knowledge pairs (knowledge-missing items); the domain travels as an extra field.
 */
import { decodeP9dJsonFile } from '../codecs/p9d-json.ts';
import { knowledgeFreeItem, readFiles, type FormatReader } from './source.ts';

export const p9dReader: FormatReader = {
  extraFields: true,
  read: (inputs, ctx) =>
    readFiles(inputs, ctx, decodeP9dJsonFile, (r) => knowledgeFreeItem(r, r.category, { domain: r.domain })),
};

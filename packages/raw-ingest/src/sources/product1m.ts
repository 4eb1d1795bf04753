/**
 * @file Product1M's `#####` lists as a {@link FormatReader}. Items have no knowledge pairs and no
 * category (knowledge-missing items); the instance labels travel as an extra field.
 */
import { decodeProduct1mFile } from '../codecs/product1m-txt.ts';
import { knowledgeFreeItem, readFiles, type FormatReader } from './source.ts';

export const product1mReader: FormatReader = {
  extraFields: true,
  read: (inputs, ctx) =>
    readFiles(inputs, ctx, decodeProduct1mFile, (r) => knowledgeFreeItem(r, '', { instanceLabels: r.instanceLabels })),
};

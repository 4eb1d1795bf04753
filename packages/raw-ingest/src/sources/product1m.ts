/**
 * @file Product1M's `#####` lists as a {@link FormatReader}. Items have no knowledge pairs and no
 * category (knowledge-missing items); the instance labels travel as an extra field.
 */
import { decodeProduct1mFile } from '../codecs/product1m-txt.ts';
import { readFiles, type FormatReader } from './source.ts';

export const product1mReader: FormatReader = {
  extraFields: true,
  read: (inputs, ctx) =>
    readFiles(inputs, ctx, decodeProduct1mFile, (r) => ({
      itemId: r.itemId,
      dedupKey: r.itemId,
      title: r.title,
      imageRefs: r.imageRefs,
      pairs: [],
      malformedPairs: 0,
      category: '',
      extra: { instanceLabels: r.instanceLabels },
    })),
};

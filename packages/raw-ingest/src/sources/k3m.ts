/**
 * @file The K3M raw TSV as a {@link FormatReader}: each input file through the raw-tsv codec,
 * in command-line order.
 */
import { decodeRawTsvFile } from '../codecs/raw-tsv.ts';
import { readFiles, type FormatReader } from './source.ts';

export const k3mReader: FormatReader = {
  extraFields: false,
  read: (inputs, ctx) =>
    readFiles(inputs, ctx, decodeRawTsvFile, (r) => ({
      itemId: r.itemId,
      dedupKey: r.itemId,
      title: r.title,
      imageRefs: [r.imageRef],
      pairs: r.pairs,
      malformedPairs: r.malformedPairs,
      category: r.category,
    })),
};

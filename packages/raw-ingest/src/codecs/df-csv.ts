/**
 * @file `image_lmdb_json/df_{train,val}.csv`, the reference's step-1 table (k3m-reference.md 2.3),
 * byte for byte as pandas `DataFrame.to_csv()` writes it with default options.
 *
 * Layout: UTF-8, `\n` line ends, a header whose first cell (the index name) is empty, then one
 * row per item: the running row number 0..n-1 over the split's segments in manifest order, then
 *
 *   image_id, caption (title), pic, pv, itemID, category
 *
 * Quoting is Python's `csv.QUOTE_MINIMAL`: a cell is wrapped in `"` when it holds `,`, `"`,
 * `\r` or `\n`, with inner `"` doubled. An empty cell is written empty (pandas writes NaN so).
 */
import { parse } from 'csv-parse/sync';
import type { SegmentRow } from './segment.ts';

export const DF_COLUMNS = ['image_id', 'caption', 'pic', 'pv', 'itemID', 'category'] as const;

/** `df_<split>.csv` */
export function dfCsvFileName(split: string): string {
  return `df_${split}.csv`;
}

/**
 * One cell with QUOTE_MINIMAL quoting.
 * @example csvCell('a,"b"') // '"a,""b"""'
 */
export function csvCell(s: string): string {
  return /[,"\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

export function encodeDfCsvHeader(): string {
  return `,${DF_COLUMNS.join(',')}\n`;
}

/** One data line, `\n` included. */
export function encodeDfCsvRow(index: number, r: SegmentRow): string {
  return [String(index), r.imageId, r.title, r.pic, r.pv, r.itemId, r.category].map(csvCell).join(',') + '\n';
}

/** Decodes a whole df CSV (tests, small files); checks the header. */
export function decodeDfCsv(text: string): (SegmentRow & { index: number })[] {
  const rows = parse(text, { relax_quotes: false }) as string[][];
  const header = rows.shift();
  if (header?.join(',') !== encodeDfCsvHeader().trimEnd()) throw new Error(`df csv: unexpected header ${JSON.stringify(header)}`);
  return rows.map((c) => {
    if (c.length !== 7) throw new Error(`df csv: expected 7 cells, got ${c.length}`);
    const [index, imageId, title, pic, pv, itemId, category] = c as [string, string, string, string, string, string, string];
    return { index: Number(index), imageId, title, pic, pv, itemId, category };
  });
}

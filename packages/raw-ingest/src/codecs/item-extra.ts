/**
 * @file The per-segment sidecar of fields the K3M segment files have no column for:
 * `item_extra<seg>.jsonl`, beside `id_title_pvs_cls.txt<seg>` in the work dir, named by the
 * segment's `extra` entry in `segments.json` (absent for K3M input, which has no extra fields).
 *
 * Layout: UTF-8, one JSON object per line, `\n` line ends, one line per row of the segment file
 * and in the same order; `imageId` repeats the row's image id so a reader can check the lockstep.
 * Keys appear in this order and only when the format has them:
 *
 *   {"imageId":"0_s0","domain":"家居用品"}                      P9D: the product domain (industry)
 *   {"imageId":"1_s0","instanceLabels":["AHC 黄金水","AHC 黄金眼霜"]}  Product1M: instance labels
 *   {"imageId":"2_s0","captionSource":"w"}                      TaiSu: which caption the title is
 */
import { z } from 'zod';
import { IoError, readTextLines } from '@k3m-kit/core';

export const ItemExtraSchema = z.object({
  domain: z.string().optional(),
  instanceLabels: z.array(z.string()).optional(),
  captionSource: z.enum(['w', 'g']).optional(),
});
/** The extra fields of one item. */
export type ItemExtra = z.infer<typeof ItemExtraSchema>;

const LineSchema = ItemExtraSchema.extend({ imageId: z.string() });

/** `item_extra<seg>.jsonl` */
export function itemExtraFileName(seg: number): string {
  return `item_extra${seg}.jsonl`;
}

/** One sidecar line (without the newline). */
export function encodeItemExtra(imageId: string, extra: ItemExtra): string {
  const { domain, instanceLabels, captionSource } = ItemExtraSchema.parse(extra);
  return JSON.stringify({
    imageId,
    ...(domain !== undefined ? { domain } : {}),
    ...(instanceLabels !== undefined ? { instanceLabels } : {}),
    ...(captionSource !== undefined ? { captionSource } : {}),
  });
}

/** Decodes and validates one line; throws with the path and line on a bad one. */
export function decodeItemExtra(text: string, path = '<item extra>', line = 0): { imageId: string; extra: ItemExtra } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new IoError(`${path}:${line}`, `not JSON (${(e as Error).message})`);
  }
  const parsed = LineSchema.safeParse(value);
  if (!parsed.success) throw new IoError(`${path}:${line}`, `invalid item extra: ${parsed.error.issues[0]?.message}`);
  const { imageId, ...extra } = parsed.data;
  return { imageId, extra };
}

/** Streams a sidecar's lines in order. */
export async function* readItemExtraFile(path: string): AsyncGenerator<{ imageId: string; extra: ItemExtra }> {
  for await (const { text, line } of readTextLines(path)) yield decodeItemExtra(text, path, line);
}

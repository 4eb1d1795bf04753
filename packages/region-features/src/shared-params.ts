/**
 * @file Detector weights in one SharedArrayBuffer, so every worker thread reads the same memory
 * instead of a copy per worker (the full detector's weights are 255 MB).
 */
import type { Params } from './model/params.ts';

export interface SharedParams {
  buffer: SharedArrayBuffer;
  /** Name, offset and length of each tensor, in float32 elements. */
  entries: [name: string, offset: number, length: number][];
}

export function shareParams(params: Params): SharedParams {
  let total = 0;
  const entries: SharedParams['entries'] = [];
  for (const [name, a] of params) {
    entries.push([name, total, a.length]);
    total += a.length;
  }
  const buffer = new SharedArrayBuffer(total * 4);
  const all = new Float32Array(buffer);
  for (const [name, offset] of entries) all.set(params.get(name)!, offset);
  return { buffer, entries };
}

/** Views on the shared buffer under their names (no copy). */
export function sharedParamViews(s: SharedParams): Params {
  return new Map(s.entries.map(([name, offset, length]) => [name, new Float32Array(s.buffer, offset * 4, length)]));
}

/**
 * @file Segment numbering, from the input alone: each split fills its own current segment, a new
 * segment takes the next free number, and a segment closes when it holds `segmentSize` items.
 * With `train.tsv:train` then `valid.tsv:val` this gives the reference's `txt0` = train,
 * `txt1` = val. Every shard computes the same numbering, so `seg % N` tells each its share.
 */
import { createHash } from 'node:crypto';
import { itemExtraFileName } from './codecs/item-extra.ts';
import { segmentFileName, type SegmentEntry, type Split } from './codecs/segment.ts';

/**
 * Which split an id without a role goes to under `--val-ratio`: the first 4 bytes of its
 * SHA-256 as a fraction of 2^32, so the choice depends on the id alone.
 * @example hashFraction('631433039677') // a number in [0, 1)
 */
export function hashFraction(itemId: string): number {
  return createHash('sha256').update(itemId).digest().readUInt32BE(0) / 2 ** 32;
}

/** Where the plan put an item. */
export interface Placement {
  seg: number;
  /** The item's index in its segment (its image id is `<k>_s<seg>`). */
  k: number;
  /** The item filled its segment, which is now closed. */
  closed?: SegmentEntry;
}

export class SegmentPlan {
  private readonly open = new Map<Split, { seg: number; count: number }>();
  private nextSeg = 0;
  /** Closed segments, in the order they closed. */
  readonly entries: SegmentEntry[] = [];

  /** @param withExtra segments get an `item_extra<seg>.jsonl` sidecar */
  constructor(
    private readonly segmentSize: number,
    private readonly withExtra: boolean,
  ) {}

  /** Places the next item of `split`. */
  place(split: Split): Placement {
    let cur = this.open.get(split);
    if (!cur) this.open.set(split, (cur = { seg: this.nextSeg++, count: 0 }));
    const k = cur.count++;
    const closed = cur.count === this.segmentSize ? this.close(split) : undefined;
    return { seg: cur.seg, k, ...(closed ? { closed } : {}) };
  }

  /** Closes every open segment, in segment order. */
  closeAll(): SegmentEntry[] {
    const splits = [...this.open.entries()].sort(([, a], [, b]) => a.seg - b.seg).map(([s]) => s);
    return splits.map((s) => this.close(s)!);
  }

  /** The manifest entries, in segment order. */
  manifest(): SegmentEntry[] {
    return [...this.entries].sort((a, b) => a.seg - b.seg);
  }

  private close(split: Split): SegmentEntry | undefined {
    const cur = this.open.get(split);
    if (!cur) return undefined;
    this.open.delete(split);
    const entry: SegmentEntry = { seg: cur.seg, split, file: segmentFileName(cur.seg), items: cur.count, ...(this.withExtra ? { extra: itemExtraFileName(cur.seg) } : {}) };
    this.entries.push(entry);
    return entry;
  }
}

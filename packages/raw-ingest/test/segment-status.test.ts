/**
 * The segment status codec both ways: the streamed writer's pieces equal the whole-file encoder
 * byte for byte, and the streaming reader gives back what the whole-file decoder does.
 */
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  decodeSegmentStatus,
  encodeMissingEntry,
  encodeSegmentStatus,
  encodeSegmentStatusParts,
  readSegmentStatusHead,
  segmentStatusPath,
  streamSegmentStatus,
  type MissingImage,
  type SegmentStatus,
} from '../src/codecs/segment-status.ts';

const missing: MissingImage[] = [
  { imageId: '3_s2', itemId: '6012', source: 'raw/train.tsv', line: 4, ref: 'http://h/a.jpg', reason: 'http-404', detail: 'HTTP 404 "quoted"\nnext', dropped: false },
  { imageId: '5_s2', itemId: 'img9', source: 'captions.json', line: 1, entry: 9, ref: 'images-0.tar:img9.jpg', reason: 'not-an-image', detail: '中文', dropped: true },
  { imageId: '7_s2', itemId: 'x', source: 'a.tar', entry: 2, member: 'dir/x.jpg', ref: '', reason: 'not-in-archives', detail: 'd', dropped: false },
];

describe('segment status codec', () => {
  it('streams the same bytes as the whole-file encoder, with and without image-missing items', () => {
    for (const list of [missing, missing.slice(0, 1), []]) {
      const status: SegmentStatus = { version: 1, seg: 2, split: 'val', items: 9, kept: 8, imagesOk: 6, imageBytes: 12345, missing: list };
      const { missing: _m, ...head } = status;
      const parts = encodeSegmentStatusParts(head, list.length > 0);
      const streamed = parts.head + list.map((m, i) => encodeMissingEntry(m, i === 0)).join('') + parts.end;
      expect(streamed).toBe(encodeSegmentStatus(status));
    }
  });

  it('reads a status streaming: the head first, then each entry; the head alone on request', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'raw-ingest-status-'));
    try {
      await mkdir(join(dir, 'build-data'));
      const status: SegmentStatus = { version: 1, seg: 2, split: 'val', items: 9, kept: 8, imagesOk: 6, imageBytes: 12345, missing };
      await writeFile(segmentStatusPath(dir, 2), encodeSegmentStatus(status));
      const got: unknown[] = [];
      for await (const x of streamSegmentStatus(segmentStatusPath(dir, 2))) got.push(x);
      const { missing: list, ...head } = decodeSegmentStatus(encodeSegmentStatus(status));
      expect(got).toEqual([{ head }, ...list.map((m) => ({ missing: m }))]);
      expect(await readSegmentStatusHead(dir, 2)).toEqual({ head, hasMissing: true });
      await writeFile(segmentStatusPath(dir, 3), encodeSegmentStatus({ ...status, seg: 3, missing: [] }));
      expect(await readSegmentStatusHead(dir, 3)).toMatchObject({ hasMissing: false });
      await writeFile(segmentStatusPath(dir, 4), encodeSegmentStatus(status).slice(0, 60));
      expect(await readSegmentStatusHead(dir, 4)).toBeUndefined();
      expect(await readSegmentStatusHead(dir, 5)).toBeUndefined();
      // A status whose seg does not match its file name is not this segment's marker.
      await writeFile(segmentStatusPath(dir, 6), encodeSegmentStatus(status));
      expect(await readSegmentStatusHead(dir, 6)).toBeUndefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

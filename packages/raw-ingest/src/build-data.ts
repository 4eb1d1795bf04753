/**
 * @file `buildData(config)`: the build-data stage. One parse pass over all inputs in order
 * validates lines, deduplicates ids (first wins) and numbers segments; each split fills its own
 * current segment and a new segment takes the next free number, so numbering depends on the
 * input alone and is the same in every shard. A segment this shard owns is processed as soon as
 * it is full: images fetched, verified and stored, then the segment file, then its status file
 * (the completion marker). After the pass every shard writes the same `segments.json` and parse
 * summary; a whole run (one shard) then finalizes (CSV, JSON, report), N shards are finalized by
 * `merge`.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rename, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import pLimit from 'p-limit';
import { decodeRawTsvFile, encodeKnowledge } from './codecs/raw-tsv.ts';
import { PARSE_REJECTS_FILE, writeParseSummary, type ParseSummary } from './codecs/parse-summary.ts';
import {
  MANIFEST_FILE,
  encodeManifest,
  encodeSegmentRow,
  imageIdFor,
  segmentFileName,
  stripHashes,
  type SegmentEntry,
  type Split,
} from './codecs/segment.ts';
import { STATUS_DIR, readSegmentStatus, writeSegmentStatus, type MissingImage, type SegmentStatus } from './codecs/segment-status.ts';
import { BuildDataConfigSchema, type BuildDataConfig, type BuildDataConfigInput } from './config.ts';
import { emptyRunInfo, finalizeBuildData, shardReport, type BuildDataResult } from './finalize.ts';
import { ImageSource, resolveImageRef, type NetworkDeps } from './image-source.ts';
import { storedImageSize, verifyImage, type ImageOptions } from './image-verify.ts';
import {
  AtomicWriter,
  tempPathFor,
  writeFileAtomic,
  IoError,
  UsageError,
  createProgress,
  type Progress,
  CappedCounter,
  ownsUnit,
} from '@k3m-kit/core';

/** An item as the parse pass hands it to its segment. */
interface PendingItem {
  k: number;
  source: string;
  line: number;
  baseDir: string;
  itemId: string;
  title: string;
  imageRef: string;
  pv: string;
  category: string;
}

type ItemOutcome = { ok: true; bytes: number; fetched: boolean } | { ok: false; reason: string; detail: string };

/**
 * Which split an id without a role goes to under `--val-ratio`: the first 4 bytes of its
 * SHA-256 as a fraction of 2^32, so the choice depends on the id alone.
 * @example hashFraction('631433039677') // a number in [0, 1)
 */
export function hashFraction(itemId: string): number {
  return createHash('sha256').update(itemId).digest().readUInt32BE(0) / 2 ** 32;
}

/** Validates `input` with the stage schema; a bad value is a {@link UsageError} naming the option. */
export function parseBuildDataConfig(input: BuildDataConfigInput): BuildDataConfig {
  const parsed = BuildDataConfigSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const key = String(issue.path[0] ?? 'config');
    throw new UsageError(`--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}: ${issue.message}`);
  }
  return parsed.data;
}

/**
 * Runs build-data. `deps` decides where HTTP may go (tests pass a loopback-only `lookup`).
 * @example await buildData({ workDir: 'work', input: ['work/raw/train.tsv:train', 'work/raw/valid.tsv:val'] })
 */
export async function buildData(input: BuildDataConfigInput, deps: NetworkDeps = {}): Promise<BuildDataResult> {
  const cfg = parseBuildDataConfig(input);
  for (const inp of cfg.input) {
    const st = await stat(inp.path).catch(() => undefined);
    if (!st?.isFile()) throw new UsageError(`--input ${inp.path}: no such file`);
  }
  const started = performance.now();
  const { workDir, shard } = cfg;
  await mkdir(join(workDir, 'image'), { recursive: true });

  const source = new ImageSource(
    { timeoutMs: cfg.timeoutMs, maxRedirects: cfg.maxRedirects, maxBytes: cfg.maxBytes, retries: cfg.retries, backoffMs: cfg.backoffMs },
    deps,
  );
  const imageOpts: ImageOptions = { maxPixels: cfg.maxPixels, minSide: cfg.minSide, maxSide: cfg.maxSide, quality: cfg.jpegQuality };
  const itemLimit = pLimit(cfg.concurrency);
  const decodeLimit = pLimit(cfg.decodeConcurrency);
  const progress = createProgress('build-data', 0, { quiet: cfg.quiet });
  const run = emptyRunInfo(`${shard.index}/${shard.count}`);
  const statuses = new Map<number, SegmentStatus>();

  /** Fetch, verify, store one image; the item slot is held throughout, so at most `concurrency` bodies live in memory. */
  const processItem = (seg: number, it: PendingItem): Promise<ItemOutcome> =>
    itemLimit(async () => {
      const imageId = imageIdFor(it.k, seg);
      const target = join(workDir, 'image', `${imageId}.jpg`);
      const stored = existsSync(target) ? await decodeLimit(() => storedImageSize(target)) : undefined;
      if (stored !== undefined) return { ok: true, bytes: stored, fetched: false };
      let url: URL;
      try {
        url = resolveImageRef(it.imageRef, it.baseDir);
      } catch (e) {
        return { ok: false, reason: 'bad-url', detail: (e as Error).message };
      }
      const fetched = await source.fetch(url);
      if (!fetched.ok) return fetched;
      const verified = await decodeLimit(() => verifyImage(fetched.body, imageOpts));
      if (!verified.ok) return verified;
      await writeImage(target, verified.jpeg);
      return { ok: true, bytes: verified.jpeg.length, fetched: true };
    });

  const processSegment = async (seg: number, split: Split, items: PendingItem[]): Promise<void> => {
    const prev = await readSegmentStatus(workDir, seg);
    if (prev && prev.items === items.length && !(cfg.retryFailed && prev.missing.length > 0)) {
      statuses.set(seg, prev);
      run.segmentsSkipped++;
      progress.increment(items.length);
      return;
    }
    const outcomes = await Promise.all(
      items.map(async (it) => {
        const o = await processItem(seg, it);
        progress.increment();
        return o;
      }),
    );
    const status: SegmentStatus = { version: 1, seg, split, items: items.length, kept: 0, imagesOk: 0, imageBytes: 0, missing: [] };
    const out = await AtomicWriter.create(join(workDir, segmentFileName(seg)));
    try {
      for (let i = 0; i < items.length; i++) {
        const it = items[i]!;
        const o = outcomes[i]!;
        const imageId = imageIdFor(it.k, seg);
        if (o.ok) {
          status.imagesOk++;
          status.imageBytes += o.bytes;
          if (o.fetched) run.imagesFetched++;
          else run.imagesReused++;
        } else {
          run.imagesFailed++;
          const dropped = cfg.missingImage === 'drop';
          const m: MissingImage = { imageId, itemId: it.itemId, source: it.source, line: it.line, ref: it.imageRef, reason: o.reason, detail: o.detail, dropped };
          status.missing.push(m);
          if (dropped) continue;
        }
        status.kept++;
        const row = { imageId, title: it.title, pic: o.ok ? `${imageId}.jpg` : '', pv: it.pv, category: it.category, itemId: it.itemId };
        await out.write(encodeSegmentRow(row) + '\n');
      }
      await out.commit();
    } catch (e) {
      await out.abort();
      throw new IoError(out.target, e);
    }
    await writeSegmentStatus(workDir, status);
    statuses.set(seg, status);
    run.segmentsProcessed++;
  };

  // ---- the parse pass ----
  const parseRejects = await AtomicWriter.create(join(workDir, STATUS_DIR, PARSE_REJECTS_FILE));
  const rejected = new CappedCounter();
  const summary: ParseSummary = {
    version: 1,
    inputs: [],
    in: 0,
    items: 0,
    rejectedByReason: {},
    malformedPairs: 0,
    itemsWithMalformedPairs: 0,
    emptyTitle: 0,
    emptyKnowledge: 0,
  };
  const manifest: SegmentEntry[] = [];
  const open = new Map<Split, { seg: number; count: number; items: PendingItem[] }>();
  let nextSeg = 0;
  let ownedItems = 0;
  const seen = new Set<string>();

  const closeSegment = async (split: Split): Promise<void> => {
    const cur = open.get(split);
    if (!cur) return;
    open.delete(split);
    manifest.push({ seg: cur.seg, split, file: segmentFileName(cur.seg), items: cur.count });
    if (ownsUnit(shard, cur.seg)) await processSegment(cur.seg, split, cur.items);
  };

  try {
    for (const inp of cfg.input) {
      const baseDir = dirname(resolve(inp.path));
      const role = inp.split ?? (cfg.valRatio !== undefined ? 'hash' : 'train');
      let records = 0;
      try {
        for await (const rec of decodeRawTsvFile(inp.path, seen)) {
          records++;
          summary.in++;
          if (!rec.ok) {
            rejected.add(rec.reason);
            const { line, reason, detail, id } = rec;
            await parseRejects.write(JSON.stringify({ source: inp.path, line, reason, detail, ...(id !== undefined ? { id } : {}) }) + '\n');
            continue;
          }
          summary.items++;
          summary.malformedPairs += rec.malformedPairs;
          if (rec.malformedPairs > 0) summary.itemsWithMalformedPairs++;
          if (rec.title.trim() === '') summary.emptyTitle++;
          if (rec.pairs.length === 0) summary.emptyKnowledge++;
          const split: Split = role === 'hash' ? (hashFraction(rec.itemId) < cfg.valRatio! ? 'val' : 'train') : role;
          let cur = open.get(split);
          if (!cur) open.set(split, (cur = { seg: nextSeg++, count: 0, items: [] }));
          const k = cur.count++;
          if (ownsUnit(shard, cur.seg)) {
            progress.setTotal(++ownedItems);
            cur.items.push({
              k,
              source: inp.path,
              line: rec.line,
              baseDir,
              itemId: rec.itemId,
              title: rec.title,
              imageRef: rec.imageRef,
              pv: stripHashes(encodeKnowledge(rec.pairs)),
              category: rec.category,
            });
          }
          if (cur.count === cfg.segmentSize) await closeSegment(split);
        }
      } catch (e) {
        if (e instanceof IoError) throw e;
        throw new IoError(inp.path, e);
      }
      summary.inputs.push({ path: inp.path, split: role, records });
    }
    for (const [split] of [...open.entries()].sort(([, a], [, b]) => a.seg - b.seg)) await closeSegment(split);
    summary.rejectedByReason = rejected.toJSON();
    manifest.sort((a, b) => a.seg - b.seg);
    await parseRejects.commit();
    await writeParseSummary(workDir, summary);
    await writeFileAtomic(join(workDir, MANIFEST_FILE), encodeManifest({ version: 1, segmentSize: cfg.segmentSize, segments: manifest }));
  } catch (e) {
    await parseRejects.abort();
    throw e;
  } finally {
    progress.stop();
    await source.close();
  }

  const seconds = (performance.now() - started) / 1000;
  run.imagesPerSecond = seconds > 0 ? run.imagesFetched / seconds : 0;
  if (shard.count === 1) return finalizeBuildData({ workDir, run, seconds });
  return shardReport({ workDir, shard, run, seconds, statuses: [...statuses.values()].sort((a, b) => a.seg - b.seg), summary });
}

/**
 * Stores an image under its final name by rename, so a reader or a resumed run never sees a
 * partial file. No fsync per image: a process kill cannot tear a renamed file, and a power loss
 * is what the resume check (a readable JPEG header) is for.
 */
async function writeImage(target: string, data: Uint8Array): Promise<void> {
  const tmp = tempPathFor(target);
  await writeFile(tmp, data);
  await rename(tmp, target);
}


/**
 * @file `buildData(config)`: the build-data stage, wired from its parts. The inputs' format
 * (given, or told from their first bytes) picks a reader (sources/); the parse pass
 * (parse-pass.ts) walks its records, numbers segments (segment-plan.ts) and feeds the segments
 * this shard owns to their jobs (segment-job.ts), which fetch, verify and store images
 * (item-image.ts) and write segment files and completion markers. A whole run (one shard) then
 * finalizes (finalize.ts: tables, rejects, report); N shards are finalized by `merge`.
 */
import { mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError, createProgress } from '@k3m-kit/core';
import { STATUS_DIR } from './codecs/segment-status.ts';
import { BuildDataConfigSchema, type BuildDataConfig, type BuildDataConfigInput } from './config.ts';
import { emptyRunInfo, finalizeBuildData, shardReport, type BuildDataResult } from './finalize.ts';
import { ImageSource, type NetworkDeps } from './image-source.ts';
import { ItemImages } from './item-image.ts';
import { runParsePass } from './parse-pass.ts';
import { Slots } from './segment-job.ts';
import { READERS, resolveFormat } from './sources/formats.ts';
import { DEFAULT_CAPTION } from './sources/taisu.ts';

/**
 * Finished items that may wait for an earlier, slower one before their rows are written, per
 * image in flight: enough to ride out a timeout at full speed, few enough to bound memory.
 */
const ROW_BACKLOG = 64;

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
 * @example await buildData({ workDir: 'work', input: ['captions.json', 'images-0.tgz'], format: 'taisu', caption: 'both' })
 */
export async function buildData(input: BuildDataConfigInput, deps: NetworkDeps = {}): Promise<BuildDataResult> {
  const cfg = parseBuildDataConfig(input);
  for (const inp of cfg.input) {
    const st = await stat(inp.path).catch(() => undefined);
    // A pipe is an input too (`--input <(zcat dump.gz)`, an archive streamed from elsewhere).
    if (!st?.isFile() && !st?.isFIFO()) throw new UsageError(`--input ${inp.path}: no such file`);
  }
  const format = await resolveFormat(cfg.format, cfg.input);
  if (cfg.caption !== undefined && format !== 'taisu') throw new UsageError(`--caption ${cfg.caption}: only applies to --format taisu (the inputs are ${format})`);
  const started = performance.now();
  const { workDir, shard } = cfg;
  await mkdir(join(workDir, 'image'), { recursive: true });
  // Scratch space of this shard's parse pass (TaiSu's caption store); a killed run's is replaced.
  const tempDir = join(workDir, STATUS_DIR, `tmp.shard-${shard.index}-of-${shard.count}`);
  await rm(tempDir, { recursive: true, force: true });
  await mkdir(tempDir, { recursive: true });

  const images = new ItemImages(
    new ImageSource({ timeoutMs: cfg.timeoutMs, maxRedirects: cfg.maxRedirects, maxBytes: cfg.maxBytes, retries: cfg.retries, backoffMs: cfg.backoffMs }, deps),
    { maxPixels: cfg.maxPixels, minSide: cfg.minSide, maxSide: cfg.maxSide, quality: cfg.jpegQuality },
    cfg.decodeConcurrency,
  );
  const progress = createProgress('build-data', 0, { quiet: cfg.quiet });
  const run = emptyRunInfo(`${shard.index}/${shard.count}`);
  const reader = READERS[format];
  let summary: Awaited<ReturnType<typeof runParsePass>>;
  try {
    summary = await runParsePass({
      cfg,
      format,
      reader,
      readContext: { tempDir, caption: cfg.caption ?? DEFAULT_CAPTION, maxBytes: cfg.maxBytes },
      segments: { workDir, tempDir, withExtra: reader.extraFields, missingImage: cfg.missingImage, retryFailed: cfg.retryFailed, images, slots: new Slots(cfg.concurrency), rows: new Slots(cfg.concurrency * ROW_BACKLOG), run, progress },
      progress,
    });
  } finally {
    progress.stop();
    await images.close();
    await rm(tempDir, { recursive: true, force: true });
  }

  const seconds = (performance.now() - started) / 1000;
  run.imagesPerSecond = seconds > 0 ? run.imagesFetched / seconds : 0;
  if (shard.count === 1) return finalizeBuildData({ workDir, run, seconds });
  return shardReport({ workDir, shard, run, seconds, summary });
}

/**
 * @file The parse pass: one walk over every record the format's reader yields, in input order.
 * A reject goes to `build-data/parse-rejects.jsonl`; an item passes the duplicate check (first
 * wins, across all inputs), takes its split (its input's role, or `--val-ratio`'s hash) and its
 * place from the {@link SegmentPlan}, and, when this shard owns the segment, goes to that
 * segment's {@link SegmentJob} at once. A full segment finishes in the background while parsing
 * goes on. At the end every shard writes the same `segments.json` and parse summary.
 *
 * Accounting: the reader counts every record in the ledger as it reads it; this pass counts each
 * item it places (`wrote`) and each reject it logs (`rejected`), so the three counts are
 * independent and a record lost on the way makes the pass fail instead of passing silently.
 */
import { join } from 'node:path';
import { AtomicWriter, Ledger, ownsUnit, writeFileAtomic, type Progress } from '@k3m-kit/core';
import { encodeKnowledge } from './codecs/raw-tsv.ts';
import { PARSE_REJECTS_FILE, writeParseSummary, type ParseSummary } from './codecs/parse-summary.ts';
import { MANIFEST_FILE, encodeManifest, imageIdFor, stripHashes, type SegmentEntry, type Split } from './codecs/segment.ts';
import { STATUS_DIR } from './codecs/segment-status.ts';
import type { BuildDataConfig } from './config.ts';
import { SegmentJob, type SegmentRunContext } from './segment-job.ts';
import { SegmentPlan, hashFraction } from './segment-plan.ts';
import { FingerprintTable } from './id-set.ts';
import type { InputFormat } from './sources/formats.ts';
import { isArchiveInput } from './sources/taisu.ts';
import { positionFields, type FormatReader, type InputSpec, type ReadContext, type SourceItem, type SourceReject } from './sources/source.ts';

/** The duplicate check's reject (the codecs validate records one by one; duplicates are the stage's). */
const DUPLICATE_ID = 'duplicate-id';

export interface ParsePassOptions {
  cfg: BuildDataConfig;
  format: InputFormat;
  reader: FormatReader;
  readContext: Omit<ReadContext, 'ledger'>;
  segments: SegmentRunContext;
  progress: Progress;
}


/** Runs the parse pass (and, through the segment jobs, the image work of owned segments). */
export async function runParsePass(o: ParsePassOptions): Promise<ParseSummary> {
  const { cfg } = o;
  const ledger = new Ledger();
  const rejectLog = await AtomicWriter.create(join(cfg.workDir, STATUS_DIR, PARSE_REJECTS_FILE));
  const counts = { malformedPairs: 0, itemsWithMalformedPairs: 0, emptyTitle: 0, emptyKnowledge: 0 };
  const perInput = new Map<InputSpec, number>(cfg.input.map((i) => [i, 0]));
  const seen = new FingerprintTable();
  const plan = new SegmentPlan(cfg.segmentSize, o.segments.withExtra);
  const jobs = new Map<number, SegmentJob>();
  const finishing: Promise<void>[] = [];
  let owned = 0;

  const reject = async (r: Pick<SourceReject, 'source' | 'pos' | 'reason' | 'detail' | 'id'>) => {
    ledger.rejected(r.reason);
    const line = { source: r.source, ...positionFields(r.pos), reason: r.reason, detail: r.detail, ...(r.id !== undefined ? { id: r.id } : {}) };
    await rejectLog.write(JSON.stringify(line) + '\n');
  };
  const finish = (entry: SegmentEntry) => {
    const job = jobs.get(entry.seg);
    if (!job) return;
    jobs.delete(entry.seg);
    const done = job.finish(entry);
    // Awaited at the end; a failure must not go unhandled in the meantime.
    done.catch(() => undefined);
    finishing.push(done);
  };
  const place = async (input: InputSpec, item: SourceItem) => {
    ledger.wrote();
    counts.malformedPairs += item.malformedPairs;
    if (item.malformedPairs > 0) counts.itemsWithMalformedPairs++;
    if (item.title.trim() === '') counts.emptyTitle++;
    if (item.pairs.length === 0) counts.emptyKnowledge++;
    const split: Split = input.split ?? (cfg.valRatio !== undefined && hashFraction(item.itemId) < cfg.valRatio ? 'val' : 'train');
    const { seg, k, closed } = plan.place(split);
    if (ownsUnit(cfg.shard, seg)) {
      let job = jobs.get(seg);
      if (!job) jobs.set(seg, (job = await SegmentJob.open(seg, split, o.segments)));
      o.progress.setTotal(++owned);
      const ref = item.image?.ok ? item.image.ref : (item.imageRefs[0] ?? '');
      await job.add(
        { k, source: item.source, pos: item.pos, itemId: item.itemId, title: item.title, ref, pv: stripHashes(encodeKnowledge(item.pairs)), category: item.category, ...(item.extra ? { extra: item.extra } : {}) },
        { target: join(cfg.workDir, 'image', `${imageIdFor(k, seg)}.jpg`), refs: item.imageRefs, baseDir: item.baseDir, ...(item.image ? { image: item.image } : {}) },
      );
    }
    if (closed) finish(closed);
  };

  try {
    for await (const { input, record } of o.reader.read(cfg.input, { ...o.readContext, ledger })) {
      perInput.set(input, (perInput.get(input) ?? 0) + 1);
      if (!record.ok) await reject(record);
      else if (!seen.add(record.dedupKey)) await reject({ ...record, reason: DUPLICATE_ID, detail: 'the item id was already seen (the first one wins)', id: record.itemId });
      else await place(input, record);
    }
    for (const entry of plan.closeAll()) finish(entry);
    await Promise.all(finishing);
    const c = ledger.counts();
    if (!c.reconciles) throw new Error(`parse pass: ${c.in} records read, ${c.written} placed + ${c.rejected} rejected: a record was lost (a bug)`);
    const summary: ParseSummary = {
      version: 1,
      inputs: cfg.input.map((i) => ({ path: i.path, split: inputRole(i, o), records: perInput.get(i)! })),
      in: c.in,
      items: c.written,
      rejectedByReason: c.rejectedByReason,
      ...counts,
    };
    await rejectLog.commit();
    await writeParseSummary(cfg.workDir, summary);
    await writeFileAtomic(join(cfg.workDir, MANIFEST_FILE), encodeManifest({ version: 1, segmentSize: cfg.segmentSize, segments: plan.manifest() }));
    return summary;
  } catch (e) {
    await rejectLog.abort();
    await Promise.allSettled(finishing);
    throw e;
  }
}

function inputRole(i: InputSpec, o: ParsePassOptions): ParseSummary['inputs'][number]['split'] {
  if (o.format === 'taisu' && isArchiveInput(i.path)) return 'archive';
  return i.split ?? (o.cfg.valRatio !== undefined ? 'hash' : 'train');
}

/**
 * @file Instance-level product retrieval (Product1M / CAPTURE): queries are pictures with
 * titles that show one or more products; the gallery holds single products; a gallery item is
 * relevant to a query when they share a product instance label. Scored with Product1M's mAP@R
 * and Prec@R, R = 10, 50, 100 (instance-metrics.ts).
 *
 * On the same frozen representations as the other tasks, with nothing fitted: as in Product1M,
 * retrieval compares the pretrained model's item representations directly. Both sides are the
 * full item (title, image and, for the model pretrained with knowledge, knowledge); feature
 * columns are standardised with the gallery's statistics, rows L2-normalised, and the gallery
 * ranked by cosine similarity. The corruption grid applies to the queries; the gallery stays
 * clean (it is the catalogue being searched).
 */
import { Rng } from '@k3m-kit/core';
import { applyCell, FULL_VIEW } from './grid.ts';
import { INSTANCE_CUTOFFS, instanceRetrievalMetrics, rankGallery, relevantGallery, type RankedQuery } from './instance-metrics.ts';
import type { Items } from './items.ts';
import { fitStandardizer, similarity, standardize, type Matrix } from './probe.ts';
import { encodeView, type CellMetrics, type TaskContext, type TaskResult } from './tasks.ts';

/** Queries and gallery; every gallery item shows exactly one product. */
export interface InstanceSplit {
  queries: Items;
  gallery: Items;
}

/** Queries scored per similarity block: bounds the block to QUERY_BLOCK x gallery scores. */
const QUERY_BLOCK = 256;

function l2rows(x: Matrix): Matrix {
  const out = new Float32Array(x.data.length);
  for (let r = 0; r < x.rows; r++) {
    const row = x.data.subarray(r * x.cols, (r + 1) * x.cols);
    let sq = 0;
    for (const v of row) sq += v * v;
    const norm = Math.sqrt(sq) || 1;
    for (let c = 0; c < x.cols; c++) out[r * x.cols + c] = row[c]! / norm;
  }
  return { data: out, rows: x.rows, cols: x.cols };
}

/** The labels of each gallery item (exactly one) and each query (one or more), checked. */
function labelsOf(split: InstanceSplit): { gallery: string[]; queries: string[][] } {
  const gallery = Array.from({ length: split.gallery.length }, (_, g) => {
    const l = split.gallery.info(g).instanceLabels;
    if (l?.length !== 1) throw new RangeError(`instance gallery item ${split.gallery.info(g).imageId}: ${l?.length ?? 0} instance labels, expected 1`);
    return l[0]!;
  });
  const queries = Array.from({ length: split.queries.length }, (_, q) => {
    const l = split.queries.info(q).instanceLabels;
    if (!l?.length) throw new RangeError(`instance query ${split.queries.info(q).imageId}: no instance labels`);
    return [...l];
  });
  return { gallery, queries };
}

/**
 * The queries' gallery rankings (the first 100) under each grid cell, scored with mAP@R and
 * Prec@R. `fit` facts: gallery and query counts, queries without any relevant gallery item.
 */
export async function instanceRetrievalTask(ctx: TaskContext, split: InstanceSplit): Promise<TaskResult> {
  const labels = labelsOf(split);
  const relevant = labels.queries.map((l) => relevantGallery(l, labels.gallery));
  const G = split.gallery.length;
  const top = Math.min(G, Math.max(...INSTANCE_CUTOFFS));
  const galleryX = await encodeView(ctx, split.gallery, FULL_VIEW);
  const std = fitStandardizer(galleryX);
  const gallery = l2rows(standardize(galleryX, std));
  const cells: Record<string, CellMetrics> = {};
  let withoutRelevant = 0;
  for (const cell of ctx.cells) {
    const { items } = applyCell(split.queries, cell, ctx.seed);
    const queries = l2rows(standardize(await encodeView(ctx, items, FULL_VIEW), std));
    const ranked: RankedQuery[] = [];
    for (let at = 0; at < queries.rows; at += QUERY_BLOCK) {
      const rows = Math.min(QUERY_BLOCK, queries.rows - at);
      const block = { data: queries.data.subarray(at * queries.cols, (at + rows) * queries.cols), rows, cols: queries.cols };
      const sim = similarity(block, gallery);
      for (let r = 0; r < rows; r++) {
        const q = at + r;
        // Ties broken by a draw that depends on the query only, so every cell breaks them alike.
        const ranking = rankGallery(sim.subarray(r * G, (r + 1) * G), Rng.from(ctx.seed, 'instance-ties', q), top);
        ranked.push({ ranking, relevant: relevant[q]! });
      }
    }
    const m = instanceRetrievalMetrics(ranked, G);
    withoutRelevant = m.withoutRelevant;
    const out: CellMetrics = {};
    for (const r of INSTANCE_CUTOFFS) {
      out[`mAP@${r}`] = m.mAP[r]!;
      out[`prec@${r}`] = m.prec[r]!;
    }
    cells[cell.id] = out;
    ctx.onCell?.();
  }
  return { cells, fit: { gallery: G, queries: split.queries.length, queriesWithoutRelevant: withoutRelevant } };
}

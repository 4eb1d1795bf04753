/**
 * @file What a random ranking or the majority class scores on the plan's items, per metric, so
 * every table can print its chance level next to the models.
 */
import { chanceInstanceRetrieval, INSTANCE_CUTOFFS, relevantGallery } from './instance-metrics.ts';
import { infosOf } from './items.ts';
import { chanceRank } from './metrics.ts';
import type { EvaluationPlan } from './plan.ts';
import { toJsonNumber } from './results.ts';

/** Rank cut-offs of the cross-modal retrieval tables. */
const RETRIEVAL_KS = [1, 5, 10];

/**
 * Chance per metric: classification = the evaluation share of the fit side's majority class;
 * retrieval = a random ranking of the evaluation gallery; completion = a random ranking of the
 * value vocabulary; instance retrieval = a random ranking of the gallery, per query.
 */
export function chanceLevels(p: EvaluationPlan): Record<string, number | null> {
  const evalInfo = infosOf(p.evalItems);
  const counts = new Map<string, number>();
  for (const r of infosOf(p.fit)) counts.set(r.category, (counts.get(r.category) ?? 0) + 1);
  const majority = [...counts.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0]![0];
  const chance: Record<string, number | null> = {
    'classification.accuracy': toJsonNumber(evalInfo.filter((r) => r.category === majority).length / evalInfo.length),
  };
  const rc = chanceRank(evalInfo.length, RETRIEVAL_KS);
  for (const d of ['title-to-image', 'image-to-title']) {
    for (const k of RETRIEVAL_KS) chance[`${d}.rank@${k}`] = toJsonNumber(rc.hitsAt[k]);
    chance[`${d}.meanRank`] = toJsonNumber(rc.meanRank);
  }
  if (p.completion) {
    const vc = chanceRank(p.completion.numValues, [1, 10]);
    chance['completion.hits@1'] = toJsonNumber(vc.hitsAt[1]);
    chance['completion.hits@10'] = toJsonNumber(vc.hitsAt[10]);
    chance['completion.meanRank'] = toJsonNumber(vc.meanRank);
  }
  if (p.instance) {
    const gallery = infosOf(p.instance.gallery).map((i) => i.instanceLabels![0]!);
    const positives = infosOf(p.instance.queries).map((q) => relevantGallery(q.instanceLabels!, gallery).size);
    const ic = chanceInstanceRetrieval(positives, gallery.length);
    for (const r of INSTANCE_CUTOFFS) {
      chance[`instance.mAP@${r}`] = toJsonNumber(ic.mAP[r]);
      chance[`instance.prec@${r}`] = toJsonNumber(ic.prec[r]);
    }
  }
  return chance;
}

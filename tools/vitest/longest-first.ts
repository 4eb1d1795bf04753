/**
 * @file Test files that take minutes start first, so that the two workers finish together.
 *
 * Vitest orders files by the durations of its last run, and a fresh clone (CI) has none: it
 * falls back to file size, largest first. The acceptance test `test/evaluate-sample.test.ts`
 * is a small file that runs the whole pipeline and two pretrainings (about 9.5 minutes in CI),
 * so it started about 7 minutes in and finished last, alone (CI of 3a483dd: 986 s of vitest for
 * 1561 s of tests on 2 workers). The files below are CI's slowest, longest first; the rest keep
 * vitest's order.
 */
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/** Repository paths, longest first (CI, 2026-12-01: 567, 150, 150, 112 and 76 s). */
export const LONGEST_FIRST = Object.freeze([
  'test/evaluate-sample.test.ts',
  'test/slurm-cluster.test.ts',
  'packages/region-features/test/extract.test.ts',
  'packages/region-features/test/bua-checkpoint.test.ts',
  'test/evaluate-instance.test.ts',
]);

/** `sequence.sequencer` of vitest.config.ts. */
export class LongestFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const rank = (f: TestSpecification) => {
      const i = LONGEST_FIRST.findIndex((p) => f.moduleId.endsWith(`/${p}`));
      return i < 0 ? LONGEST_FIRST.length : i;
    };
    return sorted.map((f, i) => ({ f, i })).sort((a, b) => rank(a.f) - rank(b.f) || a.i - b.i).map(({ f }) => f);
  }
}

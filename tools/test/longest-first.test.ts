/**
 * The test-file order of vitest.config.ts: the slowest files first, the rest as vitest orders
 * them; every file named exists (a renamed file would silently lose its place).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import type { TestSpecification, Vitest } from 'vitest/node';
import { LONGEST_FIRST, LongestFirstSequencer } from '../vitest/longest-first.ts';
import { WORKSPACE_ROOT } from '../boundaries/check.ts';

test('the named files exist', () => {
  for (const p of LONGEST_FIRST) expect(existsSync(join(WORKSPACE_ROOT, p)), p).toBe(true);
});

test('the named files run first, longest first; the others keep vitest order', async () => {
  // What BaseSequencer reads: no cached durations or sizes (a fresh clone), one project.
  const ctx = { cache: { getFileTestResults: () => undefined, getFileStats: () => undefined }, config: { root: '/repo' } } as unknown as Vitest;
  const project = { name: '', config: { sequence: { groupOrder: 0 }, isolate: true } };
  const spec = (p: string) => ({ moduleId: `/repo/${p}`, project }) as unknown as TestSpecification;
  const names = ['packages/a/test/one.test.ts', LONGEST_FIRST[2]!, 'test/two.test.ts', LONGEST_FIRST[0]!, 'tools/test/three.test.ts'];
  const sorted = await new LongestFirstSequencer(ctx).sort(names.map(spec));
  expect(sorted.map((s) => s.moduleId.slice('/repo/'.length))).toEqual([LONGEST_FIRST[0], LONGEST_FIRST[2], 'packages/a/test/one.test.ts', 'test/two.test.ts', 'tools/test/three.test.ts']);
});

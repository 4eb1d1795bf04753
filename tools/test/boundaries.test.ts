/**
 * The boundary check on a small workspace with one break of each rule, and on this workspace,
 * which must have none.
 */
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkBoundaries, WORKSPACE_ROOT, type Violation } from '../boundaries/check.ts';

let dir: string;

const project = (name: string, tag: string, deps: string[] = []) => ({
  [`packages/${name}/project.json`]: JSON.stringify({ name, tags: [tag] }),
  [`packages/${name}/package.json`]: JSON.stringify({ name: `@k3m-kit/${name}`, dependencies: Object.fromEntries(deps.map((d) => [`@k3m-kit/${d}`, '*'])) }),
});

const FILES: Record<string, string> = {
  'tsconfig.json': JSON.stringify({
    compilerOptions: { module: 'ESNext', moduleResolution: 'bundler', allowImportingTsExtensions: true, noEmit: true, strict: true, baseUrl: '.', paths: { '@k3m-kit/*': ['packages/*/src/index.ts'] } },
    include: ['packages/*/src/**/*.ts', 'packages/*/test/**/*.ts'],
  }),
  ...project('core', 'type:core', ['raw-ingest']),
  ...project('raw-ingest', 'stage:raw-ingest', ['core']),
  ...project('kg-triples', 'stage:kg-triples', ['core', 'raw-ingest']),
  'packages/core/src/index.ts': "export { segmentName } from '@k3m-kit/raw-ingest';\nexport const atomic = 1;\n",
  'packages/raw-ingest/src/index.ts': "export * from './codecs/segment.ts';\nexport { helper } from './util.ts';\n",
  'packages/raw-ingest/src/codecs/segment.ts': "export const segmentName = (i: number) => `seg${i}`;\n",
  'packages/raw-ingest/src/util.ts': "import { triples } from '@k3m-kit/kg-triples';\nexport const helper = () => triples;\n",
  'packages/kg-triples/src/index.ts': "export { triples } from './a.ts';\n",
  'packages/kg-triples/src/a.ts': "import { segmentName, helper } from '@k3m-kit/raw-ingest';\nimport { b } from './b.ts';\nexport const triples = [segmentName(0), helper, b];\n",
  'packages/kg-triples/src/b.ts': "import { triples } from './a.ts';\nimport { atomic } from '../../core/src/index.ts';\nexport const b = () => [triples, atomic];\n",
  'packages/kg-triples/test/a.test.ts': "import { helper } from '@k3m-kit/raw-ingest';\nexport const t = helper;\n",
};

let found: Violation[];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'boundaries-'));
  for (const [path, text] of Object.entries(FILES)) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), text);
  }
  found = checkBoundaries(dir);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('checkBoundaries', () => {
  const has = (rule: Violation['rule'], file: string, text: RegExp) => found.some((v) => v.rule === rule && v.file === file && text.test(v.message));

  it('refuses a stage importing a later stage, and core importing any stage', () => {
    expect(has('tags', 'packages/raw-ingest/src/util.ts', /stage:raw-ingest.*imports @k3m-kit\/kg-triples/)).toBe(true);
    expect(has('tags', 'packages/core/src/index.ts', /type:core.*imports @k3m-kit\/raw-ingest/)).toBe(true);
    expect(has('package-json', 'packages/core/package.json', /declares @k3m-kit\/raw-ingest/)).toBe(true);
    expect(has('package-json', 'packages/raw-ingest/src/util.ts', /does not declare @k3m-kit\/kg-triples/)).toBe(true);
  });

  it('lets a stage take an earlier stage\'s codecs but not its utilities (tests excepted)', () => {
    expect(has('codecs-only', 'packages/kg-triples/src/a.ts', /takes helper from @k3m-kit\/raw-ingest/)).toBe(true);
    expect(found.some((v) => v.file === 'packages/kg-triples/src/a.ts' && v.message.includes('segmentName'))).toBe(false);
    expect(found.some((v) => v.file === 'packages/kg-triples/test/a.test.ts')).toBe(false);
  });

  it('refuses a path into another package and finds import cycles', () => {
    expect(has('entries-only', 'packages/kg-triples/src/b.ts', /\.\.\/\.\.\/core\/src\/index\.ts/)).toBe(true);
    expect(found.some((v) => v.rule === 'cycle' && /kg-triples\/src\/a\.ts/.test(v.message) && /kg-triples\/src\/b\.ts/.test(v.message))).toBe(true);
    // raw-ingest/util -> kg-triples/a -> raw-ingest (index) -> util: a cross-package loop as well
    expect(found.some((v) => v.rule === 'cycle' && /raw-ingest\/src\/util\.ts/.test(v.message))).toBe(true);
  });

  it('finds nothing to report in this workspace', () => {
    expect(checkBoundaries(WORKSPACE_ROOT)).toEqual([]);
  });
});

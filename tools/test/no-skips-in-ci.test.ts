/**
 * The CI reporter: a skipped test fails the run when CI=true and only lists it otherwise.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..', '..');
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'no-skips-'));
  await writeFile(join(dir, 'probe.test.ts'), "import { expect, it } from 'vitest';\nit.skipIf(true)('needs something absent', () => {});\nit('runs', () => expect(1).toBe(1));\n");
  await writeFile(
    join(dir, 'vitest.config.ts'),
    `export default { test: { include: ['probe.test.ts'], reporters: ['default', ${JSON.stringify(join(ROOT, 'tools/vitest/no-skips-in-ci.ts'))}] } };\n`,
  );
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const vitest = (ci: boolean) =>
  spawnSync(process.execPath, [join(ROOT, 'node_modules/vitest/vitest.mjs'), 'run', '--root', dir], { encoding: 'utf8', env: { ...process.env, CI: ci ? 'true' : '' } });

describe('no-skips-in-ci reporter', () => {
  it('fails a run with a skipped test in CI, naming it', () => {
    const r = vitest(true);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/skipped in CI[\s\S]*probe\.test\.ts > needs something absent/);
  });

  it('lets it pass outside CI, still listing it', () => {
    const r = vitest(false);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/1 test\(s\) skipped[\s\S]*needs something absent/);
  });
});

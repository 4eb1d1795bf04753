/**
 * The reporter that names every test file that did not pass, in the run's last lines: one whose
 * fork is killed in the middle, and one with a failing test; a passing file is not named.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..', '..');
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'files-not-passed-'));
  const probe = (body: string) => `import { expect, it } from 'vitest';\n${body}\n`;
  await writeFile(join(dir, 'killed.test.ts'), probe("it('dies', () => { process.kill(process.pid, 'SIGKILL'); });\nit('never runs', () => expect(1).toBe(1));"));
  await writeFile(join(dir, 'wrong.test.ts'), probe("it('right', () => expect(1).toBe(1));\nit('wrong', () => expect(1).toBe(2));"));
  await writeFile(join(dir, 'fine.test.ts'), probe("it('fine', () => expect(1).toBe(1));"));
  await writeFile(
    join(dir, 'vitest.config.ts'),
    `export default { test: { pool: 'forks', include: ['*.test.ts'], reporters: ['default', ${JSON.stringify(join(ROOT, 'tools/vitest/files-not-passed.ts'))}] } };\n`,
  );
});
afterAll(() => rm(dir, { recursive: true, force: true }));

it('names a file whose fork died and a file with a failing test, last, and not a file that passed', () => {
  const r = spawnSync(process.execPath, [join(ROOT, 'node_modules/vitest/vitest.mjs'), 'run', '--root', dir], { encoding: 'utf8', env: { ...process.env, CI: '' } });
  expect(r.status).toBe(1);
  const tail = r.stderr.slice(r.stderr.lastIndexOf('files-not-passed:'));
  expect(tail).toMatch(/^files-not-passed: 2 test file\(s\) did not pass:\n/);
  expect(tail).toMatch(/ {2}- killed\.test\.ts: did not finish \(\w+\), 0 of 2 test\(s\) passed/);
  expect(tail).toMatch(/ {2}- wrong\.test\.ts: failed, 1 of 2 test\(s\) passed/);
  expect(tail).not.toMatch(/fine\.test\.ts/);
  expect(r.stderr.trimEnd().endsWith(tail.trimEnd())).toBe(true);
}, 60_000);

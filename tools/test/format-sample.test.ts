/**
 * make-sample --format: each layout's sample is byte-identical for a seed, and faults.json's
 * positions point at the bytes they name (checked here from the files, without raw-ingest).
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SAMPLE_FORMATS, makeFormatSample } from '../index.ts';

const repoRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'format-sample-'));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function filesOf(d: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const f of await readdir(d, { recursive: true })) {
    const b = await readFile(join(d, f)).catch(() => undefined);
    if (b) out.set(f, b);
  }
  return out;
}

describe('make-sample --format', () => {
  for (const format of SAMPLE_FORMATS) {
    it(`${format}: same seed, same bytes; every planted text fault sits on the line faults.json names`, async () => {
      const a = await makeFormatSample({ out: join(dir, `${format}-a`), format, seed: 3 });
      await makeFormatSample({ out: join(dir, `${format}-b`), format, seed: 3 });
      const [fa, fb] = [await filesOf(join(dir, `${format}-a`)), await filesOf(join(dir, `${format}-b`))];
      expect([...fa.keys()].sort()).toEqual([...fb.keys()].sort());
      for (const [f, bytes] of fa) expect(bytes.equals(fb.get(f)!), f).toBe(true);
      expect(a.faults.filter((f) => f.effect === 'rejected').length).toBeGreaterThanOrEqual(5);
      for (const f of a.faults) {
        if (f.line === undefined || f.id === undefined) continue;
        const line = fa.get(f.file)!.toString('utf8').split('\n')[f.line - 1];
        expect(line, `${f.kind} ${f.file}:${f.line}`).toContain(f.id);
      }
      for (const f of a.faults.filter((x) => x.member !== undefined)) {
        const listing = spawnSync('tar', ['-tf', join(dir, `${format}-a`, f.file)], { encoding: 'utf8' }).stdout.split('\n');
        expect(listing, f.kind).toContain(f.member);
      }
    });
  }

  it('the CLI writes a format sample and says what it planted; too few items is exit 2', () => {
    const out = join(dir, 'cli');
    const ok = spawnSync(process.execPath, ['tools/bin/make-sample.js', '--out', out, '--format', 'product1m', '--json'], { cwd: repoRoot, encoding: 'utf8' });
    expect(ok.status, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ format: 'product1m', inputs: [{ role: 'train' }, { role: 'val' }] });
    const bad = spawnSync(process.execPath, ['tools/bin/make-sample.js', '--out', out, '--format', 'taisu', '--train', '5'], { cwd: repoRoot, encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--train 5: expected an integer >= 14/);
  });
});

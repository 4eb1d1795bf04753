import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { buildData } from '../src/build-data.ts';
import { readSegmentStatus } from '../src/codecs/segment-status.ts';
import { readItems, stripHashes } from '../src/codecs/segment.ts';
import { loopbackOnlyLookup } from '../src/testing.ts';

const repoRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..');
const SAMPLE = resolve(repoRoot, '../shared/data/k3m-sample/train.tsv');
const present = existsSync(SAMPLE);
if (!present) console.warn(`skipping real-sample tests: ${SAMPLE} is absent`);

describe.skipIf(!present)('build-data on the 400 real K3M rows', () => {
  it('keeps all 400 items image-missing with a reason, rejects none, and deletes every # from pv', async () => {
    const workDir = await mkdtemp(join(tmpdir(), 'raw-ingest-real-'));
    try {
      // Default options; the lookup answers ENOTFOUND for every public host, so nothing leaves
      // this machine and every image fails fast instead of waiting for a timeout.
      const { report } = await buildData({ workDir, input: [`${SAMPLE}:train`], quiet: true }, { lookup: loopbackOnlyLookup });
      expect(report).toMatchObject({ in: 400, written: 400, rejected: 0, reconciles: true });
      expect(report.images).toMatchObject({ ok: 0, missing: 400, missingByReason: { dns: 400 } });
      const status = (await readSegmentStatus(workDir, 0))!;
      expect(status.missing.every((m) => m.reason === 'dns' && m.detail.includes('ENOTFOUND'))).toBe(true);

      const rawKg = new Map<string, string>();
      for (const line of (await readFile(SAMPLE, 'utf8')).split('\n')) {
        const f = line.split('\t');
        if (f.length === 5) rawKg.set(f[0]!, f[3]!);
      }
      let n = 0;
      for await (const row of readItems(workDir, 'train')) {
        n++;
        expect(row.pic).toBe('');
        expect(row.pv).toBe(stripHashes(rawKg.get(row.itemId)!));
        expect(row.pv).not.toContain('#');
      }
      expect(n).toBe(400);
    } finally {
      await rm(workDir, { recursive: true, force: true });
    }
  });
});

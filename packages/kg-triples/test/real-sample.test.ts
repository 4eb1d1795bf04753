import { existsSync, readFileSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { build, readKnowledge, readTriplesTsv, type KgReport, type PairReject } from '../src/index.ts';
import { readRawDump, segmentsOf, tempWorkDir, writeSegments } from '../src/testing.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const SAMPLE = resolve(repoRoot, '../shared/data/k3m-sample/train.tsv');
const present = existsSync(SAMPLE);
if (!present) console.warn(`skipping the real-data tests: ${SAMPLE} is absent`);

describe.skipIf(!present)('the real K3M sample (../shared/data/k3m-sample/train.tsv)', async () => {
  const dir = await tempWorkDir('kg-real');
  afterAll(() => rm(dir, { recursive: true, force: true }));
  const items = readRawDump(SAMPLE);
  const segs = segmentsOf(items, 64);
  segs[segs.length - 1]!.split = 'val';
  await writeSegments(dir, segs);
  const report = (await build({ workDir: dir, quiet: true })) as KgReport;

  it('counts, before cleaning, exactly the #;#-separated pairs of the file', () => {
    const lines = readFileSync(SAMPLE, 'utf8').split('\n').filter((l) => l.trim() !== '');
    const pairs = lines.reduce((a, l) => a + (l.split('\t')[3] ? l.split('\t')[3]!.split('#;#').length : 0), 0);
    expect(items).toHaveLength(400);
    expect(report.items).toBe(400);
    expect(report.in).toBe(pairs);
    expect(report.steps[0]!.in).toBe(pairs);
    expect(report.reconciles).toBe(true);
  });

  it('drops and reports the three 请填写 placeholders', async () => {
    expect(report.rejectedByReason.placeholder).toBe(3);
    const rejects = (await readFile(join(dir, 'rejects', 'kg-triples.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as PairReject);
    const ph = rejects.filter((r) => r.reason === 'placeholder');
    expect(ph.map((r) => r.value)).toEqual(['请填写', '请填写', '请填写']);
    expect(ph.map((r) => r.property).sort()).toEqual(['品名', '品名', '型号']);
    for await (const t of readTriplesTsv(join(dir, 'kg', 'triples.tsv'))) expect(t.v).not.toBe('请填写');
  });

  it('keeps repeated 适用年龄 values as separate triples', async () => {
    const ages: string[] = [];
    for await (const t of readTriplesTsv(join(dir, 'kg', 'triples.tsv'))) if (t.itemId === '631433242461' && t.p === '适用年龄') ages.push(t.v);
    expect(ages).toEqual(['3岁', '5岁', '4岁', '14岁以上']);
    expect(report.repeatedProperties.items).toBeGreaterThan(0);
    for await (const k of readKnowledge(dir)) {
      if (k.itemId !== '631433242461') continue;
      expect(k.pv).toBe('产地:中国大陆;适用年龄:3岁;货号:01;适用性别:中性;款式:带护网;材质:毛绒;适用年龄:5岁;玩具类型:毛绒玩具;适用年龄:4岁;适用年龄:14岁以上;');
    }
  });
});

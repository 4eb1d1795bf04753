/**
 * The report's counts against counts taken independently: pairs counted straight from the
 * segment files (the knowledge column split on `;`, not through the stage's parser), triples
 * counted from the OpenKE files, rejects from the reject log. Bad pairs of every kind are planted.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { build, type KgReport, type KgShardReport } from '../src/index.ts';
import { tempWorkDir, writeSegments, type TestSegment } from '../src/testing.ts';

/** Items in the cleaned spelling (`p:v;`), planted with every kind of bad pair. */
function planted(): TestSegment[] {
  const good = ['颜色:红色', '材质:棉', '风格:简约', '尺码:XL', '产地:中国大陆'];
  const segs: TestSegment[] = [];
  let id = 500;
  for (let s = 0; s < 4; s++) {
    const items = [];
    for (let k = 0; k < 9; k++) {
      const pairs = good.slice(0, 1 + ((s + k) % good.length));
      if (k % 3 === 0) pairs.push('品名:请填写'); // placeholder
      if (k % 4 === 1) pairs.push(pairs[0]!); // duplicate pair
      if (k % 5 === 2) pairs.push('材质:  '); // empty value
      if (k === 4) pairs.unshift('没有分隔符'); // no separator (first piece, so nothing to continue)
      if (k === 7 && s === 1) pairs.push('孤属性:孤值'); // a relation seen once: rare with --min-relation-freq 2
      if (k === 8) pairs.push('', '颜色:蓝色'); // an empty piece in the middle
      items.push({ itemId: String(id++), kg: k === 6 ? '' : pairs.join(';') + (k % 2 ? ';' : '') });
    }
    segs.push({ split: s === 3 ? 'val' : 'train', items });
  }
  return segs;
}

/** Non-empty lines of a file. */
async function lines(path: string): Promise<string[]> {
  return (await readFile(path, 'utf8')).split('\n').filter((l) => l !== '');
}

/** Pairs in a segment file: pieces of the knowledge column (5th field), a final empty one aside. */
async function pairsIn(path: string): Promise<number> {
  let n = 0;
  for (const line of await lines(path)) {
    const pv = line.split('\t')[3]!;
    if (pv === '') continue;
    const pieces = pv.split(';');
    if (pieces.at(-1) === '') pieces.pop();
    n += pieces.length;
  }
  return n;
}

/** in / written / rejected as counted from the segment files, the graph's files and the reject log. */
async function independentCounts(workDir: string, segments: number[]): Promise<{ in: number; written: number; rejected: number }> {
  let inCount = 0;
  for (const seg of segments) inCount += await pairsIn(join(workDir, `id_title_pvs_cls.txt${seg}`));
  let written = 0;
  for (const f of ['train2id.txt', 'valid2id.txt', 'test2id.txt']) {
    const [count, ...rows] = await lines(join(workDir, 'kg', f));
    expect(rows.length).toBe(Number(count));
    written += rows.length;
  }
  expect((await lines(join(workDir, 'kg', 'triples.tsv'))).length - 1).toBe(written);
  return { in: inCount, written, rejected: (await lines(join(workDir, 'rejects', 'kg-triples.jsonl'))).length };
}

const counts = (r: KgReport | KgShardReport) => ({ in: r.in, written: r.written, rejected: r.rejected });

describe('counts', () => {
  it('in, written and rejected equal counts taken from the segment files, the OpenKE files and the reject log', async () => {
    const workDir = await tempWorkDir('kg-counts');
    await writeSegments(workDir, planted());
    const report = (await build({ workDir, quiet: true, minRelationFreq: 2, holdoutRatio: 0.3 })) as KgReport;
    expect(report.merged).toBe(true);
    const truth = await independentCounts(workDir, [0, 1, 2, 3]);
    expect(counts(report)).toEqual(truth);
    expect(report.reconciles).toBe(true);
    expect(truth.in).toBe(truth.written + truth.rejected);
    expect(Object.keys(report.rejectedByReason).sort()).toEqual(['duplicate-pair', 'empty-value', 'no-separator', 'placeholder', 'rare-relation']);
  });

  it('a shard counts its own segments; the shard that merges reports the whole graph', async () => {
    const workDir = await tempWorkDir('kg-counts-shards');
    await writeSegments(workDir, planted());
    const first = (await build({ workDir, quiet: true, minRelationFreq: 2, shard: { index: 0, count: 2 } })) as KgShardReport;
    expect(first.merged).toBe(false);
    const own = (await pairsIn(join(workDir, 'id_title_pvs_cls.txt0'))) + (await pairsIn(join(workDir, 'id_title_pvs_cls.txt2')));
    expect(first.in).toBe(own);
    // A shard's output is its part files: pairs kept there plus pairs rejected by cleaning.
    const partLines = async (seg: number, kind: string) => (await lines(join(workDir, 'kg', 'parts', `seg-${seg}.${kind}`))).length;
    expect(first.written).toBe((await partLines(0, 'triples.tsv')) + (await partLines(2, 'triples.tsv')));
    expect(first.rejected).toBe((await partLines(0, 'rejects.jsonl')) + (await partLines(2, 'rejects.jsonl')));
    expect(first.reconciles).toBe(true);
    const last = (await build({ workDir, quiet: true, minRelationFreq: 2, shard: { index: 1, count: 2 } })) as KgReport;
    expect(last.merged).toBe(true);
    expect(counts(last)).toEqual(await independentCounts(workDir, [0, 1, 2, 3]));
  });
});

// Benchmark: generated dump of N items -> segments -> kg-triples build. Prints triples/s and peak RSS.
import { createWriteStream } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeManifest, encodeSegmentRow, imageIdFor, segmentFileName, MANIFEST_FILE, type SegmentEntry } from '@k3m-kit/raw-ingest';
import { build } from '@k3m-kit/kg-triples';

const N = Number(process.argv[2] ?? 100000);
const dir = process.argv[3] ?? `/tmp/kgbench/w${N}`;
const SEG = 50000;
await rm(dir, { recursive: true, force: true });
await mkdir(dir, { recursive: true });
let x = 7;
const rnd = (n: number) => { x = (Math.imul(x, 1103515245) + 12345) >>> 0; return (x >>> 8) % n; };
const props = Array.from({ length: 300 }, (_, i) => `属性${i}`);
const vals = Array.from({ length: 20000 }, (_, i) => `值${i}`);
const entries: SegmentEntry[] = [];
let pairsTotal = 0;
for (let seg = 0; seg * SEG < N; seg++) {
  const file = segmentFileName(seg);
  const ws = createWriteStream(join(dir, file));
  const n = Math.min(SEG, N - seg * SEG);
  for (let k = 0; k < n; k++) {
    const m = rnd(16);
    const pairs: string[] = [];
    for (let j = 0; j < m; j++) pairs.push(`${props[Math.min(rnd(300), rnd(300))]}:${process.env.UNIQUE !== "0" && rnd(20) === 0 ? `独有${seg}-${k}` : vals[Math.min(rnd(20000), rnd(20000))]}`);
    if (rnd(50) === 0) pairs.push('品名:请填写');
    pairsTotal += pairs.length;
    const line = encodeSegmentRow({ imageId: imageIdFor(k, seg), title: 't', pic: '', pv: pairs.join(';'), category: 'c', itemId: String(seg * SEG + k) }) + '\n';
    if (!ws.write(line)) await new Promise<void>((r) => ws.once('drain', () => r()));
  }
  await new Promise<void>((r) => ws.end(() => r()));
  entries.push({ seg, split: 'train', file, items: n });
}
await writeFile(join(dir, MANIFEST_FILE), encodeManifest({ version: 1, segmentSize: SEG, segments: entries }));
const t0 = performance.now();
const c0 = process.cpuUsage();
const r = await build({ workDir: dir, quiet: true });
const s = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(c0);
const cpuS = (cpu.user + cpu.system) / 1e6;
const rss = process.resourceUsage().maxRSS / 1024;
console.log(JSON.stringify({ items: N, pairs: pairsTotal, seconds: +s.toFixed(1), cpuSeconds: +cpuS.toFixed(1), pairsPerCpuSecond: Math.round(pairsTotal / cpuS), pairsPerSecond: Math.round(pairsTotal / s), peakRssMiB: Math.round(rss), mergeSeconds: +r.seconds.toFixed(1), written: r.written, entities: r.merged ? r.entities.total : 0 }));

import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AtomicWriter, writeFileAtomic } from '../src/atomic.ts';
import { loadConfig } from '../src/cli.ts';
import { IoError } from '../src/errors.ts';
import { readTextLines } from '../src/lines.ts';
import { decodeSafetensors, encodeSafetensors, f32, i64, SafetensorsError, toFloat32, toInt32 } from '../src/safetensors.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'core-files-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('atomic writes', () => {
  it('a file appears whole under its name, or not at all', async () => {
    await writeFileAtomic(join(dir, 'a', 'x.txt'), 'one');
    expect(await readFile(join(dir, 'a', 'x.txt'), 'utf8')).toBe('one');
    const w = await AtomicWriter.create(join(dir, 'a', 'y.txt'));
    await w.write('partial');
    expect(await readdir(join(dir, 'a'))).not.toContain('y.txt');
    await w.abort();
    expect((await readdir(join(dir, 'a'))).sort()).toEqual(['x.txt']);
  });
});

describe('safetensors', () => {
  it('round-trips tensors and metadata, sorted by name, header padded to 8 bytes', () => {
    const buf = encodeSafetensors({ b: f32([2, 2], Float32Array.from([1, -2, 3.5, 4])), a: i64([3], [7, -1, 2 ** 40]) }, { producer: 'test' });
    const n = Number(new DataView(buf.buffer).getBigUint64(0, true));
    expect((8 + n) % 8).toBe(0);
    const header = JSON.parse(new TextDecoder().decode(buf.subarray(8, 8 + n))) as Record<string, { data_offsets: number[] }>;
    expect(header.a!.data_offsets).toEqual([0, 24]);
    const back = decodeSafetensors(buf);
    expect(back.metadata).toEqual({ producer: 'test' });
    expect(Array.from(toFloat32(back.tensors.get('b')!))).toEqual([1, -2, 3.5, 4]);
    expect(Array.from(toInt32(back.tensors.get('a')!)).slice(0, 2)).toEqual([7, -1]);
  });

  it('refuses a truncated file and a shape that does not match the bytes', () => {
    const buf = encodeSafetensors({ x: f32([4], new Float32Array(4)) });
    expect(() => decodeSafetensors(buf.subarray(0, buf.length - 1))).toThrow(SafetensorsError);
    expect(() => encodeSafetensors({ x: { dtype: 'F32', shape: [3], bytes: new Uint8Array(8) } })).toThrow(/8 bytes for shape \[3\]/);
  });
});

describe('loadConfig', () => {
  const schema = z.object({ workDir: z.string(), epochs: z.number().int().positive() });
  const cmd = () => new Command().option('--work-dir <d>', '', 'work').option('--epochs <n>', '', (v) => Number(v), 2);

  it('merges the file under the flags the user typed, defaults never overriding the file', async () => {
    const f = join(dir, 'c.json');
    await writeFile(f, JSON.stringify({ epochs: 5, workDir: 'from-file' }));
    const c1 = cmd();
    c1.parse(['node', 'x'], { from: 'node' });
    expect(await loadConfig(schema, c1, f)).toEqual({ workDir: 'from-file', epochs: 5 });
    const c2 = cmd();
    c2.parse(['node', 'x', '--epochs', '3'], { from: 'node' });
    expect(await loadConfig(schema, c2, f)).toEqual({ workDir: 'from-file', epochs: 3 });
  });

  it('answers a bad value with one line naming the option', async () => {
    const f = join(dir, 'bad.json');
    await writeFile(f, JSON.stringify({ epochs: -1 }));
    const c = cmd();
    c.parse(['node', 'x'], { from: 'node' });
    await expect(loadConfig(schema, c, f)).rejects.toThrow(/^--epochs -1: /);
    await expect(loadConfig(schema, c, join(dir, 'missing.json'))).rejects.toThrow(/--config .*missing\.json: cannot read/);
  });
});

describe('readTextLines', () => {
  it('yields the non-empty lines with their 1-based numbers, LF or CRLF', async () => {
    const p = join(dir, 'lines.txt');
    await writeFile(p, 'a\r\n\nb\n\n\nc');
    const got = [];
    for await (const l of readTextLines(p)) got.push(l);
    expect(got).toEqual([{ text: 'a', line: 1 }, { text: 'b', line: 3 }, { text: 'c', line: 6 }]);
  });

  it('names the file and the hint when it cannot read, and lets a caller error through unchanged', async () => {
    const missing = join(dir, 'nope.txt');
    const read = async () => {
      for await (const _ of readTextLines(missing, 'run x first'));
    };
    await expect(read()).rejects.toThrow(IoError);
    await expect(read()).rejects.toThrow(/nope\.txt: .*ENOENT.*\(run x first\)/);
    const p = join(dir, 'lines.txt');
    const mine = new RangeError('bad line');
    const consume = async () => {
      for await (const _ of readTextLines(p)) throw mine;
    };
    await expect(consume()).rejects.toBe(mine);
  });
});

/**
 * The feature TSV decoder on K3M-sized rows: base64 cells of ~400 KB are decoded from the
 * line's bytes in slices, so a row must come back bit for bit, and a bad character anywhere
 * (in any slice, padding in the middle included) must still make the row `bad-base64`.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { BUA_DIMS, decodeFeatureLine, encodeFeatureRow, readFeatureLines, type FeatureRow } from '../src/codecs/feature-tsv.ts';
import { Rng } from '@k3m-kit/core';

function bigRow(): FeatureRow {
  const rng = new Rng(7);
  const n = 36;
  const fill = (len: number) => Float32Array.from({ length: len }, () => rng.normal() * 10);
  return { imageId: '5_s2', imageW: 640, imageH: 480, numBoxes: n, boxes: fill(n * 4), features: fill(n * BUA_DIMS.featureDim), clsProb: fill(n * BUA_DIMS.numClasses) };
}

const row = bigRow();

/** The line with the features cell's character at `at` (counted inside its base64 body) replaced. */
function withFeatureChar(line: string, at: number, ch: string): string {
  const cells = line.split('\t');
  const body = cells[5]!.slice(2, -1);
  cells[5] = `b'${body.slice(0, at)}${ch}${body.slice(at + 1)}'`;
  return cells.join('\t');
}

describe('decodeFeatureLine on K3M-sized rows', () => {
  test.each(['k3m', 'bare'] as const)('%s form: bytes and text decode bit for bit, a final CR dropped', (form) => {
    const line = encodeFeatureRow(row, form);
    // The features cell spans several of the decoder's 64 Ki-character slices.
    expect(line.split('\t')[5]!.length).toBeGreaterThan(4 * 65536);
    for (const input of [line, Buffer.from(line, 'latin1'), Buffer.from(`${line}\r`, 'latin1')]) {
      const d = decodeFeatureLine(input, BUA_DIMS);
      if (!d.ok) throw new Error(d.detail);
      expect(d.form).toBe(form);
      for (const k of ['boxes', 'features', 'clsProb'] as const) {
        expect(Buffer.from(d.row[k].buffer, d.row[k].byteOffset, d.row[k].byteLength).equals(Buffer.from(row[k].buffer))).toBe(true);
      }
      expect([d.row.imageId, d.row.imageW, d.row.imageH, d.row.numBoxes]).toEqual(['5_s2', 640, 480, 36]);
    }
  });

  test.each([
    ['a character outside the alphabet in the first slice', 10, '!'],
    ['a character outside the alphabet in the third slice', 2 * 65536 + 123, '*'],
    ['padding in the middle of the cell', 3 * 65536 + 4, '='],
    ['a space in the last slice', 4 * 65536 + 17, ' '],
  ])('%s: bad-base64', (_name, at, ch) => {
    const d = decodeFeatureLine(withFeatureChar(encodeFeatureRow(row), at, ch), BUA_DIMS);
    expect(d.ok ? 'ok' : d.reason).toBe('bad-base64');
  });

  test('a cell whose length is not whole quads, and one of whole bytes but not whole floats: bad-base64', () => {
    const cells = encodeFeatureRow(row).split('\t');
    const body = cells[5]!.slice(2, -1);
    const short = [...cells.slice(0, 5), `b'${body.slice(0, -1)}'`, ...cells.slice(6)].join('\t');
    const notFloats = [...cells.slice(0, 5), `b'${body.slice(0, -4)}AAA='`, ...cells.slice(6)].join('\t');
    for (const line of [short, notFloats]) {
      const d = decodeFeatureLine(line, BUA_DIMS);
      expect(d.ok ? 'ok' : d.reason).toBe('bad-base64');
    }
  });

  test('the arrays live in the buffers the allocator gives, one each, at offset 0', () => {
    const given: ArrayBuffer[] = [];
    const d = decodeFeatureLine(encodeFeatureRow(row), BUA_DIMS, (bytes) => {
      given.push(new ArrayBuffer(bytes));
      return given[given.length - 1]!;
    });
    if (!d.ok) throw new Error(d.detail);
    expect(given.map((b) => b.byteLength)).toEqual([36 * 4 * 4, 36 * 2048 * 4, 36 * 1601 * 4]);
    expect([d.row.boxes.buffer, d.row.features.buffer, d.row.clsProb.buffer]).toEqual(given);
    expect(d.row.features[100]).toBe(row.features[100]);
  });
});

describe('readFeatureLines', () => {
  test('cuts lines across reads of its reused buffer, grows it for a longer line, keeps line numbers, drops empty lines', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'feature-lines-'));
    try {
      const rng = new Rng(3);
      // lines of 0-40 bytes, one of 100 (longer than the 16-byte buffer several times over), CRLF and LF ends, empty lines, no final newline
      const lines = Array.from({ length: 60 }, (_, i) => (i === 17 ? 'x'.repeat(100) : i % 7 === 3 ? '' : Array.from({ length: rng.int(40) }, () => 'ab\tc'[rng.int(4)]).join('')));
      const text = lines.map((l, i) => l + (i % 5 === 0 ? '\r\n' : '\n')).join('') + 'last';
      const path = join(dir, 'f.tsv');
      await writeFile(path, text);
      const want = [...lines.map((l, i) => ({ text: l + (i % 5 === 0 ? '\r' : ''), line: i + 1 })), { text: 'last', line: 61 }].filter((x) => x.text !== '' && x.text !== '\r');
      for (const chunk of [16, 7, 1 << 22]) {
        const got: { text: string; line: number }[] = [];
        for await (const { bytes, line } of readFeatureLines(path, chunk)) got.push({ text: bytes.toString('latin1'), line });
        expect(got, `${chunk}-byte reads`).toEqual(want);
      }
      await expect(async () => {
        for await (const _ of readFeatureLines(join(dir, 'missing.tsv'))) void _;
      }).rejects.toThrow(/missing\.tsv/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

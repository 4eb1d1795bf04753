import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { decodeRawTsv, encodeKnowledge, encodeRawLine, isUsableImageRef, parseKnowledge, type RawRecord } from '../src/codecs/raw-tsv.ts';

async function decode(...chunks: (string | Buffer)[]): Promise<RawRecord[]> {
  const out: RawRecord[] = [];
  for await (const r of decodeRawTsv(Readable.from(chunks.map((c) => (typeof c === 'string' ? Buffer.from(c) : c))))) out.push(r);
  return out;
}

describe('raw-tsv codec', () => {
  it('reads LF and CRLF lines, drops a BOM and skips blank lines with correct line numbers', async () => {
    const recs = await decode('\uFEFF1\t标题\ta.jpg\tp#:#v\tc\r\n', '\n2\tt\tb.jpg\t\tc\n');
    expect(recs).toEqual([
      { ok: true, line: 1, itemId: '1', title: '标题', imageRef: 'a.jpg', pairs: [['p', 'v']], malformedPairs: 0, category: 'c' },
      { ok: true, line: 3, itemId: '2', title: 't', imageRef: 'b.jpg', pairs: [], malformedPairs: 0, category: 'c' },
    ]);
  });

  it('keeps multi-byte characters split across chunks', async () => {
    const buf = Buffer.from('1\t中文标题\ta.jpg\t颜色#:#红色\t服饰\n');
    const recs = await decode(buf.subarray(0, 4), buf.subarray(4, 7), buf.subarray(7));
    expect(recs[0]).toMatchObject({ ok: true, title: '中文标题', pairs: [['颜色', '红色']], category: '服饰' });
  });

  it('rejects 4 and 6 fields, empty ids, empty or unusable image refs; duplicates are left to the stage', async () => {
    const recs = await decode(
      '1\tt\ta.jpg\tp#:#v\n',
      '2\tt\ta.jpg\tp#:#v\tc\textra\n',
      '\tt\ta.jpg\tp#:#v\tc\n',
      '3\tt\t\tp#:#v\tc\n',
      '4\tt\tftp://x/a.jpg\tp#:#v\tc\n',
      '5\tfirst\ta.jpg\tp#:#v\tc\n',
      '5\tsecond\ta.jpg\tp#:#v\tc\n',
    );
    expect(recs.map((r) => (r.ok ? `ok:${r.title}` : `${r.line}:${r.reason}`))).toEqual([
      '1:field-count',
      '2:field-count',
      '3:empty-id',
      '4:no-image-ref',
      '5:bad-image-ref',
      'ok:first',
      'ok:second',
    ]);
  });

  it('rejects a line with invalid UTF-8 and goes on with the next', async () => {
    const recs = await decode(Buffer.concat([Buffer.from('1\tbad '), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('\ta.jpg\t\tc\n2\tgood\ta.jpg\t\tc\n')]));
    expect(recs[0]).toMatchObject({ ok: false, line: 1, reason: 'invalid-utf8' });
    expect(recs[1]).toMatchObject({ ok: true, line: 2, title: 'good' });
  });

  it('drops and counts malformed knowledge pairs without rejecting the item', () => {
    expect(parseKnowledge('')).toEqual({ pairs: [], malformed: 0 });
    expect(parseKnowledge('颜色#:#红色#;#bad#;##:#v#;#p#:#a#:#b#;#空#:#')).toEqual({ pairs: [['颜色', '红色'], ['空', '']], malformed: 3 });
    // Repeated properties are data, as in the reference.
    expect(parseKnowledge('适用年龄#:#3岁#;#适用年龄#:#4岁').pairs).toHaveLength(2);
  });

  it('round-trips well-formed knowledge and lines', async () => {
    const kg = '省份#:#河北省#;#款式定位#:#经济型';
    expect(encodeKnowledge(parseKnowledge(kg).pairs)).toBe(kg);
    const line = encodeRawLine({ itemId: '7', title: 't', imageRef: 'https://x/a.jpg', pairs: [['p', 'v']], category: 'c' });
    const [r] = await decode(line + '\n');
    expect(r).toMatchObject({ ok: true, itemId: '7', imageRef: 'https://x/a.jpg', pairs: [['p', 'v']] });
    expect(() => encodeRawLine({ itemId: '7', title: 'a\tb', imageRef: 'a', pairs: [], category: '' })).toThrow();
  });

  it('knows usable image references', () => {
    for (const ok of ['a.jpg', 'img/a.jpg', '/abs/a.jpg', 'file:a.jpg', 'file:///x/a.jpg', 'http://h/a.jpg', 'HTTPS://h/a.jpg']) {
      expect(isUsableImageRef(ok), ok).toBe(true);
    }
    for (const bad of ['ftp://h/a.jpg', 'data:image/png;base64,xx', 'http://']) expect(isUsableImageRef(bad), bad).toBe(false);
  });
});

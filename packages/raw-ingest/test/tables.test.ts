import { describe, expect, it } from 'vitest';
import { csvCell, decodeDfCsv, encodeDfCsvHeader, encodeDfCsvRow } from '../src/codecs/df-csv.ts';
import { decodeFieldJson, encodeFieldJsonEnd, encodeFieldJsonEntry } from '../src/codecs/field-json.ts';
import { targetSize } from '../src/image-verify.ts';

const row = { imageId: '0_s0', title: '标题,"引号"', pic: '', pv: 'p:v;q:w', category: 'c', itemId: '631433039677' };

describe('df csv (pandas to_csv layout)', () => {
  it('writes the index column first with an empty header and QUOTE_MINIMAL cells', () => {
    expect(encodeDfCsvHeader()).toBe(',image_id,caption,pic,pv,itemID,category\n');
    expect(encodeDfCsvRow(0, row)).toBe('0,0_s0,"标题,""引号""",,p:v;q:w,631433039677,c\n');
    expect(csvCell('a\nb')).toBe('"a\nb"');
    expect(csvCell('plain')).toBe('plain');
  });

  it('decodes what it encodes', () => {
    const text = encodeDfCsvHeader() + encodeDfCsvRow(0, row) + encodeDfCsvRow(1, { ...row, imageId: '1_s0', title: 'x' });
    expect(decodeDfCsv(text)).toEqual([{ index: 0, ...row }, { index: 1, ...row, imageId: '1_s0', title: 'x' }]);
  });
});

describe('field json (json.dump indent=2, ensure_ascii=False)', () => {
  it('matches the Python layout and keeps non-ASCII', () => {
    const text = encodeFieldJsonEntry('0_s0', '红色"', true) + encodeFieldJsonEntry('1_s0', '', false) + encodeFieldJsonEnd(2);
    expect(text).toBe('[\n  [\n    "0_s0",\n    "红色\\""\n  ],\n  [\n    "1_s0",\n    ""\n  ]\n]');
    expect(decodeFieldJson(text)).toEqual([['0_s0', '红色"'], ['1_s0', '']]);
    expect(encodeFieldJsonEnd(0)).toBe('[]');
  });
});

describe('resize rule (shorter side to minSide, longer side capped at maxSide, never enlarge)', () => {
  it('computes target sizes', () => {
    expect(targetSize(800, 1200, { minSide: 600, maxSide: 1000 })).toEqual({ width: 600, height: 900 });
    expect(targetSize(800, 3200, { minSide: 600, maxSide: 1000 })).toEqual({ width: 250, height: 1000 });
    expect(targetSize(400, 300, { minSide: 600 })).toBeUndefined();
    expect(targetSize(400, 300, {})).toBeUndefined();
  });
});

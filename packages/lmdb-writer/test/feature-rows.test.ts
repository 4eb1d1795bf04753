/**
 * A convert shard picks its feature rows by the id read from each line's bytes
 * (`featureLineImageId`) before anything is decoded; that id must be the one the codec's
 * `decodeFeatureLine` gives, for good lines and for every kind of bad one, or a shard would
 * take (or leave) a row that one process places elsewhere.
 */
import { describe, expect, test } from 'vitest';
import { decodeFeatureLine, encodeFeatureRow, featureLineImageId } from '@k3m-kit/region-features/feature-tsv';

const good = encodeFeatureRow({ imageId: '12_s3', imageW: 640, imageH: 480, numBoxes: 1, boxes: new Float32Array(4), features: new Float32Array(4), clsProb: new Float32Array(2) });

const LINES = [
  good,
  `${good}\r`,
  good.replace(/^12_s3/, 'abc'),
  good.replace(/^12_s3/, ''),
  '12_s3',
  '12_s3\r',
  '',
  'not\ta\tfeature\trow',
  '\t\t\t\t\t\t',
  '7_s1\tx\ty\tz\tb\'!\'\t\t',
  '中文_s1\t1',
];

describe('featureLineImageId', () => {
  test.each(LINES.map((l) => [JSON.stringify(l.slice(0, 40)), l]))('%s: the id decodeFeatureLine gives', (_name, line) => {
    // The bytes on disk (UTF-8), given to the codec as convert and readFeatureTsv give them: as latin1, a final CR dropped.
    const bytes = Buffer.from(line, 'utf8');
    const d = decodeFeatureLine(bytes.toString('latin1').replace(/\r$/, ''), { featureDim: 4, numClasses: 2 });
    expect(featureLineImageId(bytes)).toBe(d.ok ? d.row.imageId : d.imageId);
  });

  test('reads only the first field of a view into a larger buffer', () => {
    const buf = Buffer.from(`xx\n${good}\nyy`, 'latin1');
    expect(featureLineImageId(buf.subarray(3, 3 + good.length))).toBe('12_s3');
  });
});

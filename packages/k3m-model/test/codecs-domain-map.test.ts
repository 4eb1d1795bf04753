/** The category-to-domain map file: round trip, and a clear usage error for every bad file. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageError } from '@k3m-kit/core';
import { decodeDomainMap, encodeDomainMap, readDomainMap } from '../src/codecs/domain-map.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'k3m-domain-map-'));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('domain map codec', () => {
  it('round-trips a map, several categories sharing a domain, order kept', () => {
    const map = new Map([
      ['T恤', '服饰鞋包'],
      ['连衣裙', '服饰鞋包'],
      ['保温杯', '家居用品'],
    ]);
    const text = encodeDomainMap(map);
    expect(text).toBe('{\n  "T恤": "服饰鞋包",\n  "连衣裙": "服饰鞋包",\n  "保温杯": "家居用品"\n}\n');
    expect([...decodeDomainMap(text)]).toEqual([...map]);
    expect(encodeDomainMap({ a: 'x' })).toBe('{\n  "a": "x"\n}\n');
  });

  it('refuses text that is not JSON, not an object of strings, or has an empty name, naming the file', () => {
    expect(() => decodeDomainMap('{"a": ', 'm.json')).toThrow(/^m\.json: not JSON/);
    expect(() => decodeDomainMap('["a"]', 'm.json')).toThrow(UsageError);
    expect(() => decodeDomainMap('{"T恤": 3}', 'm.json')).toThrow(/m\.json: expected an object of category to domain name strings \(at "T恤"\)/);
    expect(() => decodeDomainMap('{"T恤": ""}')).toThrow(/an empty domain name/);
    expect(() => encodeDomainMap({ a: '' })).toThrow();
  });

  it('reads a file; a missing file is a usage error naming the option and the path', async () => {
    const path = join(dir, 'domains.json');
    await writeFile(path, '{"雨伞": "出行用品"}');
    expect(await readDomainMap(path)).toEqual(new Map([['雨伞', '出行用品']]));
    await expect(readDomainMap(join(dir, 'none.json'))).rejects.toThrow(`--domain-map ${join(dir, 'none.json')}: no such file`);
  });
});

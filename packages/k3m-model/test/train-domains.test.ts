/** Product domains of records: the record's own field first, else the category map; a source split by domain. */
import { describe, expect, it } from 'vitest';
import { UsageError } from '@k3m-kit/core';
import { makeRecord } from '../src/data/testing.ts';
import { domainOf, parseDomains, splitByDomain } from '../src/train/domains.ts';
import { arraySource } from '../src/train/records.ts';

const rec = (id: string, category: string, domain?: string) => ({ ...makeRecord({ imageId: id, numBoxes: 1 }), category, ...(domain ? { extra: { domain } } : {}) });
const map = new Map([
  ['T恤', '服饰鞋包'],
  ['台灯', '家居用品'],
]);

describe('domains', () => {
  it("takes the record's own domain over the map, the map otherwise, and nothing when neither has one", () => {
    expect(domainOf(rec('a', 'T恤', '运动/户外'), map)).toBe('运动/户外');
    expect(domainOf(rec('b', 'T恤'), map)).toBe('服饰鞋包');
    expect(domainOf(rec('c', '雨伞'), map)).toBeUndefined();
    expect(domainOf(rec('d', 'T恤'))).toBeUndefined();
  });

  it('parses the list, refusing an empty one and a domain listed twice', () => {
    expect(parseDomains(' 服饰鞋包, 家居用品 ')).toEqual(['服饰鞋包', '家居用品']);
    expect(() => parseDomains(',')).toThrow(UsageError);
    expect(() => parseDomains('a,b,a')).toThrow('--domains a,b,a: a is listed twice');
  });

  it('splits a source: each listed domain in stored order, the rest counted', async () => {
    const src = arraySource([rec('1', 'T恤'), rec('2', '台灯'), rec('3', '雨伞'), rec('4', 'T恤'), rec('5', '台灯', '家装家饰'), rec('6', '台灯')]);
    const split = await splitByDomain(src, ['家居用品', '服饰鞋包'], map, 'training');
    expect([...split.sources.keys()]).toEqual(['家居用品', '服饰鞋包']);
    const ids = async (d: string) => {
      const out: string[] = [];
      for await (const r of split.sources.get(d)!.records()) out.push(r.imageId);
      return out;
    };
    expect(await ids('家居用品')).toEqual(['2', '6']);
    expect(await ids('服饰鞋包')).toEqual(['1', '4']);
    expect(split.sources.get('家居用品')!.length).toBe(2);
    expect(split.otherDomains).toEqual({ 家装家饰: 1 });
    expect(split.withoutDomain).toBe(1);
  });

  it('refuses a listed domain without records, naming what was found, and hints at --domain-map', async () => {
    const src = arraySource([rec('1', 'T恤'), rec('2', '台灯', '家居用品')]);
    await expect(splitByDomain(src, ['出行用品'], map, 'training')).rejects.toThrow('--domains: no training record of domain 出行用品 (found: 服饰鞋包, 家居用品)');
    await expect(splitByDomain(src, ['出行用品'], undefined, 'validation')).rejects.toThrow('(found: 家居用品; 1 records carry no domain field: give --domain-map)');
  });
});

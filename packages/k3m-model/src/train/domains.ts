/**
 * @file Product domains for continual pretraining (P9D / CTP): a record's domain is its own
 * `extra.domain` (P9D input) or, when it has none, its category looked up in a
 * category-to-domain map (codecs/domain-map.ts). A domain's records are a {@link RecordSource}
 * that streams the whole source and keeps that domain's records, so no domain is ever held in
 * memory; its length is counted by one pass when the split is made.
 */
import type { K3mRecord } from '@k3m-kit/lmdb-writer';
import { UsageError } from '@k3m-kit/core';
import type { DomainMap } from '../codecs/domain-map.ts';
import type { RecordSource } from './records.ts';

/** The record's domain: its own field first, else its category's in `map`; undefined when neither gives one. */
export function domainOf(r: Pick<K3mRecord, 'category' | 'extra'>, map?: DomainMap): string | undefined {
  return r.extra?.domain ?? map?.get(r.category);
}

/** `a,b,c` → the domain names, each once, in order. */
export function parseDomains(v: string): string[] {
  const parts = v.split(',').map((s) => s.trim()).filter(Boolean);
  if (parts.length === 0) throw new UsageError(`--domains ${JSON.stringify(v)}: expected a comma-separated list of domain names`);
  const dup = parts.find((p, i) => parts.indexOf(p) !== i);
  if (dup) throw new UsageError(`--domains ${v}: ${dup} is listed twice`);
  return parts;
}

/** A source's records by domain, and how many records fell outside the listed domains. */
export interface DomainSplit {
  /** Per listed domain, in the order given. */
  sources: Map<string, RecordSource>;
  /** Records of other domains (not trained on), by domain. */
  otherDomains: Record<string, number>;
  /** Records neither their own field nor the map gives a domain. */
  withoutDomain: number;
}

/**
 * Splits `src` by domain (one counting pass). `what` names the source in errors: a listed domain
 * without any record is refused, naming the domains found.
 */
export async function splitByDomain(src: RecordSource, domains: readonly string[], map: DomainMap | undefined, what: string): Promise<DomainSplit> {
  const counts = new Map(domains.map((d) => [d, 0]));
  const otherDomains: Record<string, number> = {};
  let withoutDomain = 0;
  for await (const r of src.records()) {
    const d = domainOf(r, map);
    if (d === undefined) withoutDomain++;
    else if (counts.has(d)) counts.set(d, counts.get(d)! + 1);
    else otherDomains[d] = (otherDomains[d] ?? 0) + 1;
  }
  for (const [d, n] of counts) {
    if (n > 0) continue;
    const found = [...counts].filter(([, k]) => k > 0).map(([x]) => x).concat(Object.keys(otherDomains));
    const hint = withoutDomain > 0 && !map ? `; ${withoutDomain} records carry no domain field: give --domain-map` : '';
    throw new UsageError(`--domains: no ${what} record of domain ${d} (found: ${found.length ? found.join(', ') : 'none'}${hint})`);
  }
  const sources = new Map<string, RecordSource>();
  for (const d of domains) {
    sources.set(d, {
      length: counts.get(d)!,
      async *records() {
        for await (const r of src.records()) if (domainOf(r, map) === d) yield r;
      },
    });
  }
  return { sources, otherDomains, withoutDomain };
}

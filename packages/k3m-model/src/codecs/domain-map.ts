/**
 * @file The category-to-domain map file that continual pretraining reads for input without a
 * domain field (the K3M raw format has a category but no domain; P9D records carry theirs in
 * lmdb-writer's `extra.domain`).
 *
 * Layout: one UTF-8 JSON object, category (the record's category field, exactly) to domain name:
 *
 *   {"连衣裙": "服饰鞋包", "T恤": "服饰鞋包", "保温杯": "家居用品"}
 *
 * Names are non-empty strings; several categories may share a domain. The embedded sample's
 * generator writes one beside its TSV files (`domains.json`).
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { UsageError } from '@k3m-kit/core';

/** The file name the sample generator writes. */
export const DOMAIN_MAP_FILE = 'domains.json';

const DomainMapSchema = z.record(z.string().min(1, 'an empty category'), z.string().min(1, 'an empty domain name'));

/** Category to domain. */
export type DomainMap = ReadonlyMap<string, string>;

/**
 * The file's text for a map, categories in the order given.
 * @example encodeDomainMap(new Map([['T恤', '服饰鞋包']])) // '{\n  "T恤": "服饰鞋包"\n}\n'
 */
export function encodeDomainMap(map: DomainMap | Readonly<Record<string, string>>): string {
  const entries = map instanceof Map ? [...map] : Object.entries(map);
  return JSON.stringify(DomainMapSchema.parse(Object.fromEntries(entries)), null, 2) + '\n';
}

/** Parses and validates a map file's text; `where` names it in errors. */
export function decodeDomainMap(text: string, where = 'domain map'): DomainMap {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${where}: not JSON (${(e as Error).message})`);
  }
  const parsed = DomainMapSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new UsageError(`${where}: expected an object of category to domain name strings${issue.path.length ? ` (at ${JSON.stringify(issue.path.join('.'))})` : ''}: ${issue.message}`);
  }
  return new Map(Object.entries(parsed.data));
}

/** Reads a map file; a missing or unreadable file is a usage error naming the option. */
export async function readDomainMap(path: string, option = '--domain-map'): Promise<DomainMap> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new UsageError(`${option} ${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  return decodeDomainMap(text, `${option} ${path}`);
}

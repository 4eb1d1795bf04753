/**
 * The nx targets that write LMDB start Node with the writer's glibc malloc settings
 * (`WRITER_GLIBC_TUNABLES`: ld.so reads them only at process start, so the target has to set them).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { WRITER_GLIBC_TUNABLES } from '../src/index.ts';
import { pkgRoot } from './helpers.ts';

test('nx run lmdb-writer:convert and :merge set GLIBC_TUNABLES to WRITER_GLIBC_TUNABLES', () => {
  const project = JSON.parse(readFileSync(join(pkgRoot, 'project.json'), 'utf8')) as { targets: Record<string, { options: { command: string; env?: Record<string, string> } }> };
  for (const target of ['convert', 'merge']) {
    const o = project.targets[target]!.options;
    expect(o.command, target).toMatch(/lmdb-writer\.js (convert|merge)/);
    expect(o.env?.GLIBC_TUNABLES, target).toBe(WRITER_GLIBC_TUNABLES);
  }
  // Each setting is a glibc.malloc tunable with a whole number of bytes.
  for (const kv of WRITER_GLIBC_TUNABLES.split(':')) expect(kv).toMatch(/^glibc\.malloc\.(trim_threshold|mmap_threshold)=\d+$/);
});

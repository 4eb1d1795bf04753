// Child of malloc.test.ts: applies (or not) the LMDB writer's malloc settings, then mallocs,
// touches and frees 64 blocks of 1 MiB through libc three times, and prints the status and the
// page faults of the last two rounds (/proc/self/stat field 10).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { keepFreedMemory, LMDB_WRITER_MALLOC } from '../src/malloc.ts';

const status = keepFreedMemory(LMDB_WRITER_MALLOC);
const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
const libc = koffi.load('libc.so.6');
const malloc = libc.func('void *malloc(size_t)');
const free = libc.func('void free(void *)');
const memset = libc.func('void *memset(void *, int, size_t)');
const faults = () => Number(readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ')[7]);
const round = () => {
  const blocks = Array.from({ length: 64 }, () => malloc(1 << 20));
  for (const b of blocks) memset(b, 1, 1 << 20);
  for (const b of blocks) free(b);
};
round();
const f0 = faults();
round();
round();
console.log(JSON.stringify({ status, faults: faults() - f0 }));

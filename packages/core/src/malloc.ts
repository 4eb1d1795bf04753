/**
 * @file glibc malloc settings for stages that churn through large buffers (LMDB writes), set
 * in-process with `mallopt(3)` through koffi (the FFI `blas.ts` uses; optional, so a machine
 * without it keeps glibc's defaults and says why).
 *
 * LMDB copies every value into dirty pages it mallocs and frees each of them at commit. With
 * glibc's defaults the freed memory goes back to the kernel (trimmed, or unmapped when a block
 * was above the dynamic mmap threshold), so the next transaction faults its pages in afresh; on
 * this project's virtual machines a fault costs microseconds, and lmdb-writer's convert spent
 * most of its write thread's time there (perf, 2026-12-01). Keeping freed memory up to a bound,
 * and serving blocks below 32 MB from the heap, lets each transaction reuse the last one's pages.
 * `mallopt` is glibc's documented run-time interface to the same settings as the
 * `GLIBC_TUNABLES` variable (which ld.so reads only at process start).
 *
 * `K3M_MALLOPT=off` keeps glibc's defaults (the benchmark's comparison run).
 */
import { createRequire } from 'node:module';

/** `K3M_MALLOPT=off` keeps glibc's defaults. */
export const MALLOPT_ENV = 'K3M_MALLOPT';

/** What {@link keepFreedMemory} asks of glibc. */
export interface MallocSettings {
  /** Freed memory at the top of a heap kept before it is handed back (`M_TRIM_THRESHOLD`), bytes. */
  trimThreshold: number;
  /** Blocks at least this large get their own mapping (`M_MMAP_THRESHOLD`; glibc allows at most 32 MiB), bytes. */
  mmapThreshold: number;
}

/** For a process writing LMDB: more than a transaction's pages kept; every LMDB value from the heap. */
export const LMDB_WRITER_MALLOC: MallocSettings = Object.freeze({ trimThreshold: 128 << 20, mmapThreshold: 32 << 20 });

export type MallocStatus = { applied: true; settings: MallocSettings; text: string } | { applied: false; text: string };

// glibc's malloc.h
const M_TRIM_THRESHOLD = -1;
const M_MMAP_THRESHOLD = -3;

let applied: MallocStatus | undefined;

/**
 * Sets glibc's trim and mmap thresholds for this process (all threads), once; later calls return
 * the first call's status. Not glibc (musl, macOS, Windows), no koffi or `K3M_MALLOPT=off`: the
 * defaults stay and `text` says why.
 * @example const s = keepFreedMemory(LMDB_WRITER_MALLOC); console.log(s.text);
 */
export function keepFreedMemory(settings: MallocSettings): MallocStatus {
  applied ??= apply(settings);
  return applied;
}

function apply(s: MallocSettings): MallocStatus {
  if (process.env[MALLOPT_ENV] === 'off') return { applied: false, text: `glibc malloc defaults (${MALLOPT_ENV}=off)` };
  if (process.platform !== 'linux') return { applied: false, text: `malloc defaults (${process.platform}, not glibc)` };
  let koffi: typeof import('koffi');
  try {
    koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
  } catch (e) {
    return { applied: false, text: `glibc malloc defaults (koffi not installed: ${(e as Error).message.split('\n')[0]})` };
  }
  let glibc: string;
  let mallopt: (param: number, value: number) => number;
  try {
    // glibc's own name for its shared library, and a function only glibc has.
    const libc = koffi.load('libc.so.6');
    glibc = (libc.func('const char *gnu_get_libc_version()') as () => string)();
    mallopt = libc.func('int mallopt(int, int)') as (param: number, value: number) => number;
  } catch (e) {
    return { applied: false, text: `malloc defaults (not glibc: ${(e as Error).message.split('\n')[0]})` };
  }
  try {
    // mallopt returns 1 on success, 0 for a value glibc refuses.
    const trim = mallopt(M_TRIM_THRESHOLD, s.trimThreshold);
    const mmap = mallopt(M_MMAP_THRESHOLD, s.mmapThreshold);
    if (trim !== 1 || mmap !== 1) return { applied: false, text: `glibc ${glibc} refused mallopt (M_TRIM_THRESHOLD ${trim}, M_MMAP_THRESHOLD ${mmap})` };
  } catch (e) {
    return { applied: false, text: `glibc malloc defaults (mallopt: ${(e as Error).message.split('\n')[0]})` };
  }
  const mb = (b: number) => `${b / 2 ** 20} MiB`;
  return { applied: true, settings: s, text: `glibc ${glibc} mallopt: trim threshold ${mb(s.trimThreshold)}, mmap threshold ${mb(s.mmapThreshold)}` };
}

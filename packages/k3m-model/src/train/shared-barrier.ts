/**
 * @file A reusable barrier for worker threads over shared memory (Atomics), which never hangs:
 * a waiting thread wakes every few milliseconds to look at an abort word, which the coordinator
 * (or a failing worker) sets, and then throws {@link WorkerAborted}. Blocking waits are for
 * workers only; the coordinator's thread never calls {@link SharedBarrier.wait}.
 */

/** Thrown in a worker waiting at a barrier when another thread aborted the run. */
export class WorkerAborted extends Error {
  constructor() {
    super('aborted: another worker failed or the run was interrupted');
  }
}

/** Int32 words of one barrier: arrivals and generation. */
export const BARRIER_WORDS = 2;

/** How long one blocking wait lasts before the abort word is looked at again. */
const POLL_MS = 20;

/**
 * Blocks until `words[at]` holds `want`, waking on its notify or every `pollMs` to look at the
 * abort word (then throws {@link WorkerAborted}) and at `giveUp` (then returns false).
 * @example waitForWord(done, t, base + k, abort) // true once done[t] === base + k
 */
export function waitForWord(words: Int32Array, at: number, want: number, abort: Int32Array, o: { pollMs?: number; giveUp?: () => boolean } = {}): boolean {
  for (;;) {
    const v = Atomics.load(words, at);
    if (v === want) return true;
    if (Atomics.load(abort, 0)) throw new WorkerAborted();
    if (o.giveUp?.()) return false;
    Atomics.wait(words, at, v, o.pollMs ?? POLL_MS);
  }
}

export class SharedBarrier {
  /**
   * @param words {@link BARRIER_WORDS} Int32 words of shared memory owned by this barrier
   * @param abort one shared Int32 word, non-zero once the run is aborted
   */
  constructor(
    private readonly words: Int32Array,
    private readonly abort: Int32Array,
  ) {}

  /** Blocks until `parties` threads have called it (the same number in each of them). */
  wait(parties: number): void {
    if (parties <= 1) return this.check();
    const gen = Atomics.load(this.words, 1);
    if (Atomics.add(this.words, 0, 1) === parties - 1) {
      Atomics.store(this.words, 0, 0);
      Atomics.add(this.words, 1, 1);
      Atomics.notify(this.words, 1);
      return;
    }
    while (Atomics.load(this.words, 1) === gen) {
      this.check();
      Atomics.wait(this.words, 1, gen, POLL_MS);
    }
  }

  /** Whether some thread is waiting at this barrier now. */
  occupied(): boolean {
    return Atomics.load(this.words, 0) > 0;
  }

  private check(): void {
    if (Atomics.load(this.abort, 0)) throw new WorkerAborted();
  }
}

/** Sets the abort word and wakes every waiter of `barriers` (safe on any thread). */
export function abortAll(abort: Int32Array, barriers: Int32Array[]): void {
  Atomics.store(abort, 0, 1);
  for (const w of barriers) Atomics.notify(w, 1);
}

/**
 * @file Error classes whose type decides the exit code (design.md section 5):
 * a bad option or config is a {@link UsageError} (exit 2), unrecoverable I/O is an
 * {@link IoError} (exit 1, with the path). Bad records are never thrown: they are rejected.
 */

/** A bad option, argument or config value. The message is one line naming the option. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** An unrecoverable read or write, with the path that failed. */
export class IoError extends Error {
  override name = 'IoError';
  constructor(
    readonly path: string,
    cause: unknown,
  ) {
    super(`${path}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

/** Exit codes shared by every CLI. */
export const EXIT = Object.freeze({ ok: 0, failure: 1, usage: 2, interrupted: 130 });

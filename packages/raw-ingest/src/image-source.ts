/**
 * @file Fetches the bytes behind an image reference: http(s) through one pooled undici Agent,
 * or a local file (`file:` URL or a path relative to the input file). A failure is a value with
 * a stable reason, never a throw, so one bad URL cannot stop a segment.
 *
 * Policy: per-attempt timeout over headers and body, redirects followed by hand and counted,
 * a byte cap checked on Content-Length and again while streaming, retries with exponential
 * backoff on 5xx, resets, truncated transfers and timeouts; no retry on 4xx, on DNS failure
 * (a host that does not resolve will not resolve a second later) or on a refused connection.
 */
import type { LookupFunction } from 'node:net';
import { readFile, stat } from 'node:fs/promises';
import { isAbsolute, resolve as resolvePath } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Agent, type Dispatcher } from 'undici';

export interface FetchOptions {
  /** Per attempt, covering connect, headers and body. */
  timeoutMs: number;
  maxRedirects: number;
  maxBytes: number;
  /** Extra attempts after the first, for retryable failures only. */
  retries: number;
  /** First backoff; doubles per retry. */
  backoffMs: number;
}

/** Everything that decides where a request may go; tests use it to keep traffic on loopback. */
export interface NetworkDeps {
  /** DNS lookup used for every connection (Node's `net.connect` `lookup`). */
  lookup?: LookupFunction;
  /** A ready dispatcher; when given, `lookup` is ignored and the caller closes it. */
  dispatcher?: Dispatcher;
}

export type FetchResult = { ok: true; body: Buffer } | { ok: false; reason: string; detail: string };

const RETRYABLE = new Set(['timeout', 'reset', 'incomplete-body']);
const REDIRECT_STATUS = new Set([301, 302, 303, 307, 308]);

class FetchFailure extends Error {
  constructor(
    readonly reason: string,
    detail: string,
  ) {
    super(detail);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Resolves an image reference from the raw TSV to an absolute URL: http(s) stays as is,
 * `file:` URLs and plain paths resolve against `baseDir` (the input file's directory).
 * @example resolveImageRef('img/1.jpg', '/data/raw') // URL file:///data/raw/img/1.jpg
 */
export function resolveImageRef(ref: string, baseDir: string): URL {
  if (/^https?:/i.test(ref)) return new URL(ref);
  const base = pathToFileURL(baseDir.endsWith('/') ? baseDir : `${baseDir}/`);
  if (/^file:/i.test(ref)) return new URL(ref, base);
  return pathToFileURL(isAbsolute(ref) ? ref : resolvePath(baseDir, ref));
}

/** Fetches image bytes; one instance per run so every request shares one connection pool. */
export class ImageSource {
  private readonly dispatcher: Dispatcher;
  private readonly ownsDispatcher: boolean;

  constructor(
    private readonly opts: FetchOptions,
    deps: NetworkDeps = {},
  ) {
    this.ownsDispatcher = !deps.dispatcher;
    this.dispatcher =
      deps.dispatcher ??
      new Agent({
        connect: deps.lookup ? { lookup: deps.lookup, timeout: opts.timeoutMs } : { timeout: opts.timeoutMs },
        keepAliveTimeout: 10_000,
      });
  }

  async fetch(url: URL): Promise<FetchResult> {
    try {
      if (url.protocol === 'file:') return { ok: true, body: await this.readLocal(url) };
      if (url.protocol !== 'http:' && url.protocol !== 'https:') {
        return { ok: false, reason: 'bad-url', detail: `unsupported scheme ${url.protocol}` };
      }
      return { ok: true, body: await this.fetchWithRetries(url) };
    } catch (e) {
      if (e instanceof FetchFailure) return { ok: false, reason: e.reason, detail: e.message };
      return { ok: false, reason: 'network', detail: (e as Error).message };
    }
  }

  async close(): Promise<void> {
    if (this.ownsDispatcher) await this.dispatcher.close();
  }

  private async readLocal(url: URL): Promise<Buffer> {
    const path = fileURLToPath(url);
    try {
      const st = await stat(path);
      if (!st.isFile()) throw new FetchFailure('not-found', `${path} is not a file`);
      if (st.size > this.opts.maxBytes) throw new FetchFailure('too-large', `${st.size} bytes > --max-bytes ${this.opts.maxBytes}`);
      return await readFile(path);
    } catch (e) {
      if (e instanceof FetchFailure) throw e;
      const code = (e as NodeJS.ErrnoException).code;
      throw new FetchFailure(code === 'ENOENT' || code === 'ENOTDIR' ? 'not-found' : 'file-error', `${path}: ${(e as Error).message}`);
    }
  }

  private async fetchWithRetries(url: URL): Promise<Buffer> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.fetchOnce(url);
      } catch (e) {
        const failure = e instanceof FetchFailure ? e : classify(e);
        const retryable = RETRYABLE.has(failure.reason) || /^http-5\d\d$/.test(failure.reason);
        if (!retryable || attempt >= this.opts.retries) throw failure;
        await sleep(this.opts.backoffMs * 2 ** attempt);
      }
    }
  }

  private async fetchOnce(start: URL): Promise<Buffer> {
    const signal = AbortSignal.timeout(this.opts.timeoutMs);
    let url = start;
    try {
      for (let hops = 0; ; hops++) {
        const res = await this.dispatcher.request({
          origin: url.origin,
          path: `${url.pathname}${url.search}`,
          method: 'GET',
          headers: { 'user-agent': 'k3m-kit raw-ingest', accept: 'image/*' },
          signal,
        });
        if (REDIRECT_STATUS.has(res.statusCode)) {
          await res.body.dump();
          const location = res.headers.location;
          if (typeof location !== 'string') throw new FetchFailure('bad-redirect', `${res.statusCode} without Location`);
          if (hops >= this.opts.maxRedirects) {
            throw new FetchFailure('too-many-redirects', `more than --max-redirects ${this.opts.maxRedirects}`);
          }
          url = new URL(location, url);
          if (url.protocol !== 'http:' && url.protocol !== 'https:') {
            throw new FetchFailure('bad-redirect', `redirect to ${url.protocol}`);
          }
          continue;
        }
        if (res.statusCode !== 200) {
          await res.body.dump();
          throw new FetchFailure(`http-${res.statusCode}`, `HTTP ${res.statusCode} from ${url.href}`);
        }
        const declared = Number(res.headers['content-length']);
        if (Number.isFinite(declared) && declared > this.opts.maxBytes) {
          res.body.destroy();
          throw new FetchFailure('too-large', `Content-Length ${declared} > --max-bytes ${this.opts.maxBytes}`);
        }
        const chunks: Buffer[] = [];
        let size = 0;
        try {
          for await (const chunk of res.body as AsyncIterable<Buffer>) {
            size += chunk.length;
            if (size > this.opts.maxBytes) {
              res.body.destroy();
              throw new FetchFailure('too-large', `body over --max-bytes ${this.opts.maxBytes}`);
            }
            chunks.push(chunk);
          }
        } catch (e) {
          // Headers said 200 and the transfer broke off: report it as such, not as a reset.
          if (e instanceof FetchFailure || signal.aborted) throw e;
          throw new FetchFailure('incomplete-body', `after ${size} bytes: ${(e as Error).message}`);
        }
        return Buffer.concat(chunks, size);
      }
    } catch (e) {
      if (e instanceof FetchFailure) throw e;
      if (signal.aborted) throw new FetchFailure('timeout', `no complete response within --timeout-ms ${this.opts.timeoutMs}`);
      throw e;
    }
  }
}

/** Maps a transport error to a reason. */
function classify(e: unknown): FetchFailure {
  const err = e as { code?: string; message?: string; cause?: { code?: string } };
  const code = err.code ?? err.cause?.code ?? '';
  const msg = err.message ?? String(e);
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_NONAME') return new FetchFailure('dns', `${code}: ${msg}`);
  if (code === 'ECONNREFUSED') return new FetchFailure('refused', msg);
  if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return new FetchFailure('timeout', `${code}: ${msg}`);
  }
  if (code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH') return new FetchFailure('incomplete-body', msg);
  if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'UND_ERR_SOCKET' || code === 'UND_ERR_CLOSED') {
    return new FetchFailure('reset', `${code}: ${msg}`);
  }
  return new FetchFailure('network', code ? `${code}: ${msg}` : msg);
}

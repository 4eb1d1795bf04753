/**
 * @file Test-only helpers (never imported by production code): JPEG fixtures made with sharp,
 * a DNS lookup that cannot leave loopback, a fault-injecting HTTP server on 127.0.0.1, and a
 * byte comparison of two work directories.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo, LookupFunction } from 'node:net';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import sharp from 'sharp';

/**
 * A distinct JPEG per `seed` (a colour gradient with a seed-dependent block), `w`x`h` pixels.
 * @example await makeJpeg(3, 64, 48)
 */
export async function makeJpeg(seed: number, w = 64, h = 48, quality = 85): Promise<Buffer> {
  const px = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      const inBlock = ((x >> 4) + (y >> 4) + seed) % 5 === 0;
      px[i] = (x * 255) / w + seed * 37;
      px[i + 1] = inBlock ? 255 - seed * 11 : (y * 255) / h;
      px[i + 2] = (seed * 91 + x + y) & 255;
    }
  }
  return sharp(px, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality }).toBuffer();
}

/**
 * A DNS lookup that resolves `localhost` only and answers ENOTFOUND for every other name, so a
 * test can never reach the internet whatever URL it is given.
 */
export const loopbackOnlyLookup: LookupFunction = (hostname, options, callback) => {
  if (hostname === 'localhost') {
    if ((options as { all?: boolean }).all) (callback as (e: null, a: { address: string; family: number }[]) => void)(null, [{ address: '127.0.0.1', family: 4 }]);
    else callback(null, '127.0.0.1', 4);
    return;
  }
  const err = Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', hostname, syscall: 'getaddrinfo' });
  callback(err, '', 4);
};

export interface FaultServer {
  /** `http://127.0.0.1:<port>` */
  base: string;
  /** Requests seen per path. */
  hits: Map<string, number>;
  close(): Promise<void>;
}

export interface FaultServerOptions {
  /** Body of `/ok/<n>.jpg`; default {@link makeJpeg}(n). */
  image?: (n: number) => Promise<Buffer> | Buffer;
  /** Delay before answering `/ok/...` (to make runs long enough to kill). */
  okDelayMs?: number;
  /** How long `/slow` waits before its headers. */
  slowMs?: number;
  /** A JPEG served at `/huge.jpg`, meant to exceed the run's pixel limit. */
  huge?: Buffer;
}

/**
 * Serves images and faults on 127.0.0.1:
 * `/ok/<n>.jpg` an image; `/404`; `/flaky/<key>` 500 on the first request, then an image;
 * `/always500`; `/slow` answers after `slowMs`; `/reset` destroys the socket; `/cut` declares the
 * full length and closes halfway; `/truncated.jpg` a truncated JPEG served whole; `/html` HTML as
 * image/jpeg; `/huge.jpg`; `/loop` redirects to itself; `/hop/<n>` redirects to `/ok/<n>.jpg`.
 */
export async function startFaultServer(opts: FaultServerOptions = {}): Promise<FaultServer> {
  const image = opts.image ?? ((n: number) => makeJpeg(n));
  const good = await makeJpeg(999, 64, 64);
  const truncated = good.subarray(0, Math.floor(good.length * 0.6));
  const hits = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const n = (hits.get(path) ?? 0) + 1;
    hits.set(path, n);
    const jpeg = (body: Buffer) => res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': body.length }).end(body);
    const ok = /^\/ok\/(\d+)\.jpg$/.exec(path);
    if (ok) {
      const send = async () => jpeg(await image(Number(ok[1])));
      if (opts.okDelayMs) setTimeout(() => void send(), opts.okDelayMs);
      else void send();
      return;
    }
    const hop = /^\/hop\/(\d+)$/.exec(path);
    if (hop) return void res.writeHead(302, { location: `/ok/${hop[1]}.jpg` }).end();
    if (path === '/404') return void res.writeHead(404).end('not found');
    if (path === '/always500') return void res.writeHead(500).end('boom');
    if (path.startsWith('/flaky/')) return n === 1 ? void res.writeHead(500).end('boom') : jpeg(good);
    if (path === '/slow') return void setTimeout(() => (res.destroyed ? undefined : jpeg(good)), opts.slowMs ?? 5000);
    if (path === '/reset') return void req.socket.destroy();
    if (path === '/cut') {
      res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': good.length });
      res.write(good.subarray(0, good.length >> 1));
      setTimeout(() => req.socket.destroy(), 20);
      return;
    }
    if (path === '/truncated.jpg') return jpeg(truncated);
    if (path === '/html') return void res.writeHead(200, { 'content-type': 'image/jpeg' }).end('<html><body>not an image</body></html>');
    if (path === '/huge.jpg' && opts.huge) return jpeg(opts.huge);
    if (path === '/loop') return void res.writeHead(302, { location: '/loop' }).end();
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    base: `http://127.0.0.1:${port}`,
    hits,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** Every file under `dir` (relative paths, sorted), skipping names `skip` matches. */
export async function listFiles(dir: string, skip: (rel: string) => boolean = () => false): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (!skip(relative(dir, p))) out.push(relative(dir, p));
    }
  };
  await walk(dir);
  return out.sort();
}

/**
 * Compares two work dirs byte for byte. Reports are compared without their per-invocation
 * fields (`seconds`, `run`); `skip` leaves files out (e.g. per-shard outputs).
 * @returns the differing or one-sided paths (empty when identical)
 */
export async function diffWorkDirs(a: string, b: string, skip: (rel: string) => boolean = () => false): Promise<string[]> {
  const fa = await listFiles(a, skip);
  const fb = await listFiles(b, skip);
  const diffs = [...fa.filter((f) => !fb.includes(f)), ...fb.filter((f) => !fa.includes(f))];
  for (const f of fa.filter((x) => fb.includes(x))) {
    let [x, y] = await Promise.all([readFile(join(a, f)), readFile(join(b, f))]);
    if (f.startsWith('reports/')) {
      const strip = (buf: Buffer) => {
        const { seconds: _s, run: _r, ...rest } = JSON.parse(buf.toString('utf8')) as Record<string, unknown>;
        return Buffer.from(JSON.stringify(rest));
      };
      [x, y] = [strip(x), strip(y)];
    }
    if (!x.equals(y)) diffs.push(f);
  }
  return diffs.sort();
}

#!/usr/bin/env node
/**
 * @file The workspace's postinstall step: builds lmdb-js from source for LMDB data format 1.
 *
 * lmdb-js's prebuilt binaries write LMDB data format 2, which liblmdb 0.9 (Debian's
 * python3-lmdb, so tensorpack and the original K3M loaders) refuses with MDB_INVALID. Built
 * with `LMDB_DATA_V1=true` it compiles its bundled LMDB 0.9 sources and writes format 1.
 *
 * Idempotent: a child process writes a one-key probe database through the lmdb-js that Node
 * would load and reads the format from the file's meta page; when it is already 1 nothing is
 * built (under a second). `npm ci` deletes node_modules, so a build is also kept in
 * `<workspace>/.cache/lmdb-data-v1/<lmdb, Node, platform>/` and restored from there. Otherwise
 * it checks the C++ tool chain node-gyp needs, says what is missing and fails the install, or
 * runs `node-gyp rebuild` in node_modules/lmdb (about 40 s) and probes again. Node's headers
 * come from npm's `nodedir` setting, or from the headers next to this Node binary
 * (`<prefix>/include/node`), so nothing is downloaded when they exist.
 *
 *   node packages/lmdb-writer/scripts/build-lmdb.js          # check, build when needed
 *   node packages/lmdb-writer/scripts/build-lmdb.js --probe  # print the data format only
 */
import { spawnSync } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const WANTED_FORMAT = 1;
const MDB_MAGIC = 0xbeefc0de;
const self = fileURLToPath(import.meta.url);
const say = (line) => process.stderr.write(`build-lmdb: ${line}\n`);

/** The LMDB data format lmdb-js writes, read from the meta page of a fresh one-key file. */
async function probe() {
  const { open } = await import('lmdb');
  const dir = mkdtempSync(join(tmpdir(), 'k3m-lmdb-probe-'));
  try {
    const path = join(dir, 'probe.lmdb');
    const db = open({ path, keyEncoding: 'binary', encoding: 'binary' });
    db.putSync(Buffer.from('k'), Buffer.from('v'));
    await db.close();
    const head = Buffer.alloc(32);
    const fd = openSync(path, 'r');
    readSync(fd, head, 0, head.length, 0);
    closeSync(fd);
    // The meta (magic, version) follows the page header: 16 bytes in format 1, 24 in format 2.
    for (const at of [16, 24]) if (head.readUInt32LE(at) === MDB_MAGIC) return head.readUInt32LE(at + 4);
    throw new Error(`${path}: no LMDB meta page`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs the probe in a child process (a loaded native addon cannot be replaced in-process). */
function probeInChild(lmdbDir) {
  const r = spawnSync(process.execPath, [self, '--probe'], { cwd: lmdbDir, encoding: 'utf8' });
  const format = Number(r.stdout.trim());
  return r.status === 0 && Number.isInteger(format) ? { format } : { error: (r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ') };
}

const has = (cmd, args = ['--version']) => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;

/** What node-gyp needs that this machine lacks. */
function missingToolChain() {
  const missing = [];
  const cxx = process.env.CXX || 'g++';
  if (!has(cxx) && !has('c++')) missing.push(`a C++ compiler (${cxx})`);
  if (!has(process.env.CC || 'gcc') && !has('cc')) missing.push('a C compiler (gcc)');
  if (!has('make')) missing.push('make');
  const python = process.env.npm_config_python || process.env.PYTHON || 'python3';
  if (!has(python)) missing.push(`Python 3 (${python})`);
  return missing;
}

/** npm's node-gyp: npm hands its path to install scripts; otherwise the copy next to npm. */
function nodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    join(dirname(process.execPath), '../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'),
  ].filter(Boolean);
  return candidates.find((p) => existsSync(p));
}

/** `--nodedir` when npm has none and this Node's headers are installed beside it. */
function nodedirArgs() {
  if (process.env.npm_config_nodedir) return [];
  const prefix = dirname(dirname(process.execPath));
  return existsSync(join(prefix, 'include/node/node.h')) ? [`--nodedir=${prefix}`] : [];
}

/** node_modules/<name> as Node resolves it from here (lmdb's exports hide its package.json). */
function packageDir(name) {
  for (let dir = dirname(self); ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'node_modules', name, 'package.json'))) return join(dir, 'node_modules', name);
    if (dirname(dir) === dir) return undefined;
  }
}

/** Where a format-1 build of this lmdb for this Node is kept across `npm ci` runs. */
function cachedBuild(lmdbDir) {
  const { version } = JSON.parse(readFileSync(join(lmdbDir, 'package.json'), 'utf8'));
  const workspace = dirname(dirname(lmdbDir));
  return join(workspace, '.cache', 'lmdb-data-v1', `lmdb-${version}-node-${process.versions.node}-${process.platform}-${process.arch}`, 'lmdb.node');
}

/** Copies a file under a temporary name and renames it: a loaded copy of the target is never overwritten in place. */
function replaceFile(from, to) {
  mkdirSync(dirname(to), { recursive: true });
  copyFileSync(from, `${to}.tmp`);
  renameSync(`${to}.tmp`, to);
}

async function main() {
  if (process.argv.includes('--probe')) {
    process.stdout.write(`${await probe()}\n`);
    return;
  }
  const lmdbDir = packageDir('lmdb');
  if (!lmdbDir) {
    say('lmdb is not installed (run npm ci first)');
    process.exitCode = 1;
    return;
  }
  const built = join(lmdbDir, 'build/Release/lmdb.node');
  const cache = cachedBuild(lmdbDir);
  const before = probeInChild(lmdbDir);
  if (before.format === WANTED_FORMAT) {
    if (!existsSync(cache) && existsSync(built)) replaceFile(built, cache);
    say(`lmdb-js writes LMDB data format ${WANTED_FORMAT} (already built from source); nothing to do`);
    return;
  }
  if (existsSync(cache)) {
    replaceFile(cache, built);
    const restored = probeInChild(lmdbDir);
    if (restored.format === WANTED_FORMAT) {
      say(`lmdb-js writes LMDB data format ${WANTED_FORMAT}: restored the build kept in ${cache}`);
      return;
    }
    if (restored.error) rmSync(cache, { force: true }); // a kept build that no longer loads
  }
  say(`lmdb-js writes ${before.format ? `LMDB data format ${before.format}` : `nothing usable (${before.error})`}; Python's lmdb (liblmdb 0.9) reads only format ${WANTED_FORMAT}: building it from source with LMDB_DATA_V1=true (about 40 s)`);
  const missing = missingToolChain();
  const gyp = nodeGyp();
  if (!gyp) missing.push("node-gyp (npm's bundled copy was not found; set npm_config_node_gyp)");
  if (missing.length) {
    say(`cannot build lmdb-js: missing ${missing.join(', ')}.`);
    say('Install them (Debian/Ubuntu: apt-get install -y g++ make python3) and run npm ci again.');
    process.exitCode = 1;
    return;
  }
  const build = spawnSync(process.execPath, [gyp, 'rebuild', ...nodedirArgs()], {
    cwd: lmdbDir,
    env: { ...process.env, LMDB_DATA_V1: 'true' },
    stdio: ['ignore', 'pipe', 'pipe'],
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  if (build.status !== 0) {
    process.stderr.write(build.stdout + build.stderr);
    say(`node-gyp rebuild failed in ${lmdbDir} (exit ${build.status}); output above`);
    process.exitCode = 1;
    return;
  }
  const after = probeInChild(lmdbDir);
  if (after.format !== WANTED_FORMAT) {
    say(`built, but lmdb-js still writes ${after.format ? `format ${after.format}` : `nothing usable (${after.error})`}`);
    process.exitCode = 1;
    return;
  }
  replaceFile(built, cache);
  say(`built ${built}: lmdb-js writes LMDB data format ${WANTED_FORMAT} (kept in ${cache} for the next npm ci)`);
}

await main();

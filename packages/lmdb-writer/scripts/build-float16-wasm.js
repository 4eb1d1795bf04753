#!/usr/bin/env node
/**
 * @file Assembles `src/codecs/float16.wat` with wabt and writes its bytes, base64, into
 * `src/codecs/float16-wasm.ts` (between the BEGIN/END lines). The bytes are committed, so nothing
 * is assembled at install or run time; `test/float16.test.ts` assembles the source again and
 * checks that the committed bytes match it.
 *
 *   node packages/lmdb-writer/scripts/build-float16-wasm.js          # rewrite the bytes
 *   node packages/lmdb-writer/scripts/build-float16-wasm.js --print  # print the base64 only
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import wabtInit from 'wabt';

const codecs = join(dirname(fileURLToPath(import.meta.url)), '../src/codecs');
const WAT = join(codecs, 'float16.wat');
const TS = join(codecs, 'float16-wasm.ts');

/** The module's bytes, base64. */
export async function assemble() {
  const wabt = await wabtInit();
  const m = wabt.parseWat('float16.wat', readFileSync(WAT, 'utf8'), { simd: true });
  try {
    m.validate();
    return Buffer.from(m.toBinary({}).buffer).toString('base64');
  } finally {
    m.destroy();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const b64 = await assemble();
  if (process.argv.includes('--print')) console.log(b64);
  else {
    const ts = readFileSync(TS, 'utf8');
    const out = ts.replace(/(\/\/ BEGIN float16\.wat\n)[\s\S]*?(\n\/\/ END float16\.wat)/, `$1export const FLOAT16_WASM = '${b64}';$2`);
    if (out === ts && !ts.includes(b64)) throw new Error(`${TS}: no BEGIN/END float16.wat lines`);
    writeFileSync(TS, out);
    console.log(`${TS}: ${Buffer.from(b64, 'base64').length} bytes`);
  }
}

#!/usr/bin/env node
// Fails (exit 1) when an import breaks the workspace's boundaries (tools/boundaries/check.ts).
import { register } from 'tsx/esm/api';

register();
const { checkBoundaries, WORKSPACE_ROOT } = await import('../boundaries/check.ts');
const violations = checkBoundaries(process.argv[2] ?? WORKSPACE_ROOT);
for (const v of violations) process.stderr.write(`check-boundaries: [${v.rule}] ${v.file}: ${v.message}\n`);
if (violations.length) {
  process.stderr.write(`check-boundaries: ${violations.length} violation(s); rules in tools/boundaries/check.ts\n`);
  process.exitCode = 1;
} else process.stdout.write('check-boundaries: no violations\n');

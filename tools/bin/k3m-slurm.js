#!/usr/bin/env node
// Runs the TypeScript CLI through tsx, so no build step sits between a clone and the first run.
import { register } from 'tsx/esm/api';

register();
await import('../slurm/cli.ts');

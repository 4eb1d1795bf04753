/**
 * @file The child process of a two-process evaluation: reads `{config, role}` as JSON on stdin,
 * evaluates that one model ({@link evaluateModel}) and writes its outcome as one JSON line on
 * stdout. Started by `evaluate` with the tsx loader.
 */
import { evaluateModel } from './evaluate.ts';

let input = '';
process.stdin.setEncoding('utf8');
for await (const chunk of process.stdin) input += chunk;
const { config, role } = JSON.parse(input);
const outcome = await evaluateModel({ ...config, quiet: true }, role);
process.stdout.write('\n' + JSON.stringify(outcome) + '\n');

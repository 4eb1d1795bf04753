/**
 * @file The child process of a two-process evaluation (workers.ts): reads `{config, role}` as
 * JSON on stdin, evaluates that one model ({@link evaluateModel}) and writes its outcome as one
 * JSON line on stdout.
 */
import { evaluateModel } from './model-run.ts';

let input = '';
process.stdin.setEncoding('utf8');
for await (const chunk of process.stdin) input += chunk;
const { config, role } = JSON.parse(input);
const outcome = await evaluateModel({ ...config, quiet: true }, role);
process.stdout.write('\n' + JSON.stringify(outcome) + '\n');

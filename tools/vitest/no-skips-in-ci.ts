/**
 * @file A vitest reporter that fails the run in CI (CI=true) when any test was skipped: `.ci/run`
 * installs everything the tests need (Python modules, Slurm), so a skip there means something a
 * test relies on is missing, and a green run would hide it. Outside CI it only lists the skips.
 */
import type { Reporter, TestCase, TestModule } from 'vitest/node';

export default class NoSkipsInCi implements Reporter {
  private readonly skipped: string[] = [];

  onTestCaseResult(test: TestCase): void {
    if (test.result().state === 'skipped') this.skipped.push(`${test.module.moduleId.replace(process.cwd() + '/', '')} > ${test.fullName}`);
  }

  onTestRunEnd(_modules: ReadonlyArray<TestModule>): void {
    if (!this.skipped.length) return;
    const inCi = process.env.CI === 'true' || process.env.CI === '1';
    const head = inCi ? `no-skips-in-ci: ${this.skipped.length} test(s) skipped in CI, which installs everything they need; failing the run:` : `${this.skipped.length} test(s) skipped (each printed why above; in CI this fails the run):`;
    process.stderr.write(`\n${head}\n${this.skipped.map((s) => `  - ${s}`).join('\n')}\n`);
    if (inCi) process.exitCode = 1;
  }
}

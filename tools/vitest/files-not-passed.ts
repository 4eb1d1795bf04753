/**
 * @file A vitest reporter that names, in the run's last lines, every test file that did not
 * pass and how many of its tests did. When a fork dies (a native add-on's fatal error, a kill),
 * vitest's summary counts a failed file without naming it, and a CI log cut to its tail loses
 * the name with the rest.
 */
import { relative } from 'node:path';
import type { Reporter, TestModule, Vitest } from 'vitest/node';

export default class FilesNotPassed implements Reporter {
  private root = process.cwd();

  onInit(vitest: Vitest): void {
    this.root = vitest.config.root;
  }

  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    const bad = modules.filter((m) => !['passed', 'skipped'].includes(m.state()));
    if (!bad.length) return;
    const lines = bad.map((m) => {
      const tests = [...m.children.allTests()];
      const passed = tests.filter((t) => t.result().state === 'passed').length;
      const error = m.errors()[0]?.message.split('\n')[0];
      const state = m.state() === 'failed' ? 'failed' : `did not finish (${m.state()})`;
      return `  - ${relative(this.root, m.moduleId)}: ${state}, ${passed} of ${tests.length} test(s) passed${error ? ` (${error})` : ''}`;
    });
    process.stderr.write(`\nfiles-not-passed: ${bad.length} test file(s) did not pass:\n${lines.join('\n')}\n`);
  }
}

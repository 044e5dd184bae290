// The whole test suite in one command: build, typecheck, lint, vitest (unit + integration against
// real rsync/sshd), Playwright in Debian's Chromium. Ends with one line: "N passed, N failed[, N skipped]".
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

fs.mkdirSync('test-results', { recursive: true });
const totals = { passed: 0, failed: 0, skipped: 0 };
// Named again at the very end: CI shows the tail of a long run, where a failure far above is cut off.
const failedNames = [];
const firstLine = (text) => String(text ?? '').split('\n')[0].slice(0, 300);
const run = (cmd, args, env = {}) => spawnSync(cmd, args, { stdio: 'inherit', env: { ...process.env, ...env } }).status;

// Build, typecheck and lint count as one check each: a red one is a failure a user would hit.
for (const [name, args] of [
  ['build', ['run', '-s', 'build']],
  ['typecheck', ['run', '-s', 'typecheck']],
  ['lint', ['run', '-s', 'lint']],
]) {
  console.log(`\n== ${name}`);
  if (run('npm', args) === 0) totals.passed++;
  else {
    totals.failed++;
    failedNames.push(name);
  }
}

console.log('\n== vitest (unit + integration)');
const vitestJson = 'test-results/vitest.json';
fs.rmSync(vitestJson, { force: true });
run('npx', ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${vitestJson}`]);
if (fs.existsSync(vitestJson)) {
  const r = JSON.parse(fs.readFileSync(vitestJson, 'utf8'));
  totals.passed += r.numPassedTests;
  totals.failed += r.numFailedTests + (r.numFailedTestSuites && !r.numFailedTests ? r.numFailedTestSuites : 0);
  totals.skipped += r.numPendingTests + r.numTodoTests;
  for (const f of r.testResults) {
    const file = path.relative(process.cwd(), f.name);
    const failed = f.assertionResults.filter((a) => a.status === 'failed');
    for (const a of failed) failedNames.push(`vitest ${file} › ${a.fullName}: ${firstLine(a.failureMessages[0])}`);
    if (f.status === 'failed' && !failed.length) failedNames.push(`vitest ${file}: ${firstLine(f.message)}`);
  }
} else {
  totals.failed++;
  failedNames.push('vitest: no report (it did not run to its end)');
}

console.log('\n== playwright (e2e in Chromium)');
const pwJson = 'test-results/playwright.json';
fs.rmSync(pwJson, { force: true });
run('npx', ['playwright', 'test', '--reporter=list,json'], { PLAYWRIGHT_JSON_OUTPUT_NAME: pwJson });
if (fs.existsSync(pwJson)) {
  const report = JSON.parse(fs.readFileSync(pwJson, 'utf8'));
  const s = report.stats;
  totals.passed += s.expected + s.flaky;
  totals.failed += s.unexpected;
  totals.skipped += s.skipped;
  if (s.expected + s.unexpected + s.flaky === 0) totals.failed++; // a suite that ran nothing is broken
  const walk = (suite) => {
    for (const spec of suite.specs ?? []) {
      for (const t of spec.tests) {
        const last = t.results.at(-1);
        if (t.status === 'unexpected') failedNames.push(`playwright ${spec.file}:${spec.line} › ${spec.title}: ${firstLine(last?.error?.message)}`);
      }
    }
    (suite.suites ?? []).forEach(walk);
  };
  report.suites.forEach(walk);
} else {
  totals.failed++;
  failedNames.push('playwright: no report (it did not run to its end)');
}

// The lab: virtual laptops booted in qemu (test/lab/). Where qemu cannot run it says so and its
// scenarios count as skipped, never as passed.
console.log('\n== lab (virtual laptops in qemu)');
const labJson = 'test-results/lab.json';
fs.rmSync(labJson, { force: true });
run('npx', ['vite-node', 'test/lab/run-lab.ts']);
if (fs.existsSync(labJson)) {
  const r = JSON.parse(fs.readFileSync(labJson, 'utf8'));
  totals.passed += r.passed;
  totals.failed += r.failed;
  totals.skipped += r.skipped;
  for (const x of r.results.filter((x) => x.outcome === 'failed')) failedNames.push(`lab ${x.backend} (${x.id}): ${firstLine(x.detail)}`);
} else {
  totals.failed++;
  failedNames.push('lab: no report (it did not run to its end)');
}

if (failedNames.length) console.log(`\n== failed\n${failedNames.map((n) => `  ${n}`).join('\n')}`);
const line = `${totals.passed} passed, ${totals.failed} failed${totals.skipped ? `, ${totals.skipped} skipped` : ''}`;
fs.writeFileSync('test-results/summary.txt', line + '\n');
console.log(`\n${line}`);
process.exit(totals.failed ? 1 : 0);

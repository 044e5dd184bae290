// Builds the agent and the window once per `playwright test` run, so the tests never see a stale build.
import { execFileSync } from 'node:child_process';
import { repoRoot } from '../fixtures/headless-agent';

export default function globalSetup() {
  execFileSync('npm', ['run', '-s', 'build'], { cwd: repoRoot, stdio: 'inherit' });
}

// One sync at a time on this laptop, even when several start at the same moment and find the lock of a
// process that died (a crash, a power cut): real processes race over it, round after round, and in
// every round exactly one of them holds it.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { buildSync } from 'esbuild';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

let dir: string;
let crowd: ChildProcess[] = [];
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-lock-'));
});
afterEach(() => {
  for (const c of crowd) c.kill('SIGKILL');
  crowd = [];
  fs.rmSync(dir, { recursive: true, force: true });
});

/** The pid of a process that has ended. */
const deadPid = () => spawnSync('true').pid;

async function until(what: () => boolean, timeoutMs = 30_000) {
  const end = Date.now() + timeoutMs;
  while (!what()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('the local sync lock', () => {
  it('a lock left by a dead process, found by many starting at once, is taken over by exactly one', { timeout: 120_000 }, async () => {
    const worker = path.join(dir, 'lock-worker.cjs');
    buildSync({ entryPoints: [path.join(__dirname, '../fixtures/lock-worker.ts')], bundle: true, platform: 'node', format: 'cjs', outfile: worker, logLevel: 'error' });
    const stateDir = path.join(dir, 'state');
    const signals = path.join(dir, 'signals');
    fs.mkdirSync(stateDir);
    fs.mkdirSync(signals);
    const [processes, rounds] = [6, 25];
    crowd = Array.from({ length: processes }, () => spawn(process.execPath, [worker, stateDir, signals, String(rounds)], { stdio: ['ignore', 'ignore', 'inherit'] }));
    const pids = crowd.map((c) => c.pid!);
    const seen = (prefix: string) => pids.every((p) => fs.existsSync(path.join(signals, `${prefix}-${p}`)));
    await until(() => seen('ready'));

    const oneWinner = [...Array<string>(processes - 1).fill('already-running'), 'won'];
    for (let round = 0; round < rounds; round++) {
      // The lock a crashed sync left behind (its pid, nobody's now).
      fs.writeFileSync(path.join(stateDir, 'sync.lock'), String(deadPid()));
      fs.writeFileSync(path.join(signals, `go-${round}`), '');
      await until(() => seen(`result-${round}`));
      const results = pids.map((p) => fs.readFileSync(path.join(signals, `result-${round}-${p}`), 'utf8'));
      expect(results.slice().sort(), `round ${round}`).toEqual(oneWinner);
      // While the winner holds it, the lock names the winner.
      const winner = pids[results.indexOf('won')];
      expect(Number.parseInt(fs.readFileSync(path.join(stateDir, 'sync.lock'), 'utf8'), 10)).toBe(winner);
      fs.writeFileSync(path.join(signals, `end-${round}`), '');
      await until(() => seen(`done-${round}`));
      // Released: the next sync finds it free.
      expect(fs.existsSync(path.join(stateDir, 'sync.lock'))).toBe(false);
    }
  });
});

describe('what a process killed while taking the lock leaves behind', () => {
  it('its half-made lock file (killed between writing it and linking it in) is removed by the next sync; a live one stays', async () => {
    const { acquireLock } = await import('../../src-main/core/sync/local-lock');
    const dead = deadPid();
    const leftover = path.join(dir, `sync.lock.${dead}-0b7c1e52-5d1f-4f51-9a4c-7b1f0f6d2f1e`);
    const leftoverGuard = path.join(dir, `sync.lock.takeover.${dead}-4f9e2d1a-1c3b-4e5f-8a7b-9c0d1e2f3a4b`);
    const live = path.join(dir, `sync.lock.${process.ppid}-6a1b2c3d-4e5f-4a7b-8c9d-0e1f2a3b4c5d`);
    for (const f of [leftover, leftoverGuard, live]) fs.writeFileSync(f, 'x');
    const release = acquireLock(dir);
    release();
    expect(fs.readdirSync(dir).sort()).toEqual([path.basename(live)]);
  });
});

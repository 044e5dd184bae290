// The stall watch (runRsync's stallSeconds) reads how much a run's rsync processes have read. It reads
// /proc for them only: not every process of the machine every few seconds, and never another
// user's. And it still sees the run's own processes, the rsync it started and the one that forks
// (real rsync, real processes; fs calls are recorded, not replaced).
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runRsync } from '../../src-main/core/rsync';

const NOBODY = 65534;

describe('the stall watch of an rsync run', { timeout: 60_000 }, () => {
  let dir: string;
  let other: ChildProcess;
  const read: string[] = [];
  const real = { readFileSync: fs.readFileSync, readdirSync: fs.readdirSync, openSync: fs.openSync };
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-watch-'));
    // Another user's process on the same machine.
    other = spawn('sleep', ['600'], { uid: NOBODY, gid: NOBODY, stdio: 'ignore' });
    read.length = 0;
    const record = <F extends (...a: never[]) => unknown>(f: F) =>
      ((...a: unknown[]) => {
        if (typeof a[0] === 'string' && a[0].startsWith('/proc')) read.push(a[0]);
        return (f as unknown as (...b: unknown[]) => unknown)(...a);
      }) as unknown as F;
    Object.assign(fs, { readFileSync: record(real.readFileSync), readdirSync: record(real.readdirSync), openSync: record(real.openSync) });
  });
  afterEach(() => {
    Object.assign(fs, real);
    other.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function slowCopy(kbps: number) {
    fs.mkdirSync(path.join(dir, 'from'));
    fs.writeFileSync(path.join(dir, 'from/big'), crypto.randomBytes(1_500_000));
    return runRsync(['-a', `--bwlimit=${kbps}`, path.join(dir, 'from') + '/', path.join(dir, 'to') + '/'], {}, { stallSeconds: 1 });
  }

  it("reads only the run's own processes in /proc, never all of it nor another user's", async () => {
    const r = await slowCopy(1000).done; // ~1.5 s: the watch looks every 250 ms
    expect(r.code).toBe(0);
    expect(r.stalledSeconds).toBeUndefined();
    expect(read.length).toBeGreaterThan(0); // it did watch
    expect(read).not.toContain('/proc');
    expect(read.filter((p) => p.startsWith(`/proc/${other.pid}/`))).toEqual([]);
  });

  it('still stops a run whose processes, the forked one with them, all stopped reading', async () => {
    const run = slowCopy(300);
    const pids = () => read.map((p) => Number(/^\/proc\/(\d+)\/io$/.exec(p)?.[1])).filter((n) => n > 0);
    await expect.poll(() => new Set(pids()).size, { timeout: 10_000, interval: 50 }).toBe(3); // a local copy: the sender, and the receiver it forks, which forks the generator
    for (const pid of new Set(pids())) process.kill(pid, 'SIGSTOP');
    const r = await run.done;
    expect(r.stalledSeconds).toBe(1);
    expect(r.code).not.toBe(0);
  });
});

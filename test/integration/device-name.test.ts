// Two laptops built from one image carry the image's /etc/hostname ("laptop" on both) and differ only
// in the machine-id their boot keeps. Each must name itself differently on the storage: otherwise one
// takes the other's storage lock for a dead lock of its own (same host, a process it does not have)
// and the two runs mix, and conflict copies and origin records name the wrong laptop.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { deviceName } from '../../src-main/core/device-name';
import { localEndpoint } from '../../src-main/core/sync/endpoint';
import { acquireStorageLock } from '../../src-main/core/sync/storage-lock';
import { createSandbox, repoRoot, type AgentSandbox } from '../fixtures/headless-agent';

const ID_A = 'aaaa1111' + '0'.repeat(24);
const ID_B = 'bbbb2222' + '0'.repeat(24);

function imageRoot(root: string, machineId: string) {
  fs.mkdirSync(path.join(root, 'etc'), { recursive: true });
  fs.writeFileSync(path.join(root, 'etc/hostname'), 'laptop\n'); // the image's, on every laptop
  fs.writeFileSync(path.join(root, 'etc/machine-id'), machineId + '\n');
}

describe('the name a laptop gives itself on the storage', () => {
  let a: AgentSandbox;
  let b: AgentSandbox;
  beforeEach(() => {
    a = createSandbox();
    b = createSandbox();
    imageRoot(a.env.TABULA_ROOT!, ID_A);
    imageRoot(b.env.TABULA_ROOT!, ID_B);
  });
  afterEach(async () => {
    await a.dispose();
    await b.dispose();
  });

  it('differs between two laptops of one image (same host name, own machine-ids); a name given per machine is kept', () => {
    const nameA = deviceName(a.env.TABULA_ROOT!, 'laptop');
    const nameB = deviceName(b.env.TABULA_ROOT!, 'laptop');
    expect(nameA).toBe('laptop-aaaa1111');
    expect(nameB).toBe('laptop-bbbb2222');
    // A host name set for this machine (DHCP, hostnamectl) is not the image's: it is used as it is.
    expect(deviceName(a.env.TABULA_ROOT!, 'ann-laptop')).toBe('ann-laptop');
    // An image without /etc/hostname: every laptop falls back to the same name ("localhost").
    fs.rmSync(path.join(b.env.TABULA_ROOT!, 'etc/hostname'));
    expect(deviceName(b.env.TABULA_ROOT!, 'localhost')).toBe('localhost-bbbb2222');
    fs.writeFileSync(path.join(b.env.TABULA_ROOT!, 'etc/hostname'), 'laptop\n');
    // A long host name still gives a name a record can carry (at most 63 characters).
    fs.writeFileSync(path.join(a.env.TABULA_ROOT!, 'etc/hostname'), 'x'.repeat(64) + '\n');
    expect(deviceName(a.env.TABULA_ROOT!, 'x'.repeat(64))).toMatch(/^x{54}-aaaa1111$/);
  });

  it("`tabula sync` on laptop B waits for laptop A's lock instead of taking it as its own, then records itself under its own name", { timeout: 90_000 }, async () => {
    const storage = path.join(a.dir, 'nas');
    fs.mkdirSync(storage);
    // Laptop A is syncing: its process number means nothing on laptop B (here: no such process).
    const lockA = await acquireStorageLock(localEndpoint(storage), { host: deviceName(a.env.TABULA_ROOT!, 'laptop'), pid: 999_999, leaseSeconds: 3600 });
    fs.writeFileSync(path.join(b.home, 'Documents', 'from-b.txt'), 'written on B\n');

    // Laptop B, its kernel's host name the image's "laptop" (a UTS namespace of its own).
    const unshare = process.getuid!() === 0 ? ['--uts'] : ['--map-root-user', '--uts'];
    const child = spawn('unshare', [...unshare, 'sh', '-c', 'hostname laptop && exec "$@"', 'sh', process.execPath, path.join(repoRoot, 'bin/tabula.js'), 'sync', '--storage', storage], { env: b.env, cwd: b.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let stdout = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    try {
      await expect.poll(() => stderr, { timeout: 30_000 }).toContain('is busy: laptop-aaaa1111 (process 999999) is syncing with it');
      // Still A's: B has not taken it over, nor sent anything.
      expect(fs.readFileSync(path.join(storage, '.tabula/lock/owner'), 'utf8')).toMatch(/^laptop-aaaa1111 999999 /);
      expect(fs.existsSync(path.join(storage, 'Documents/from-b.txt'))).toBe(false);
    } finally {
      await lockA.release();
    }
    expect(await exited).toBe(0);
    expect(stdout).toMatch(/^Sent /m);
    expect(fs.readFileSync(path.join(storage, 'Documents/from-b.txt'), 'utf8')).toBe('written on B\n');
    // The storage's record of what B sent is B's, not A's or the image's shared name.
    expect(fs.readdirSync(path.join(storage, '.tabula/origin'))).toEqual(['laptop-bbbb2222']);
  });
});

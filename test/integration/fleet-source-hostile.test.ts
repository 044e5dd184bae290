// The attack: a hostile fleet server. Over HTTP it answers policy.json with 300 MB (no end in sight
// for a reader that buffers); a fleet folder (a mounted share someone else controls) holds a FIFO,
// a device and a link where the policy should be. The real tabula-helper (root) fetches the policy
// for every verb: it must stop reading at the cap, never block, never read a device, and still
// answer.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TabulaError } from '../../src-main/common/errors';
import { publishRsyncTree } from '../../src-main/fleet-publish';
import { fetchFleetFile } from '../../src-main/core/fleet-source';
import { createImageFleet, writeSystemConfig, type ImageFleet } from '../fixtures/image-fleet';
import { repoRoot } from '../fixtures/headless-agent';

let fleet: ImageFleet;
const helper = path.join(repoRoot, 'build/main/helper.js');

beforeEach(() => {
  fleet = createImageFleet();
  publishRsyncTree({ treeDir: fleet.makeTree('v1', '1.0', 5), outDir: fleet.serverDir, version: '1.0', channel: 'stable', privateKeyPem: fleet.key.privateKeyPem });
});
afterEach(() => fleet.dispose());

/** Runs the real helper as root under /usr/bin/time: its last JSON line, exit code and peak memory. */
function runHelper(args: string[], timeoutMs = 20_000): Promise<{ code: number | null; last: { type: string; result?: unknown; error?: { message: string } }; maxRssKiB: number; ms: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    // Its own process group: a helper stuck on a FIFO is killed with /usr/bin/time, not left behind.
    const child = spawn('/usr/bin/time', ['-f', 'maxrss=%M', process.execPath, helper, ...args], { env: { ...process.env, TABULA_ROOT: fleet.root, HOME: '/nonexistent' }, detached: true });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (err += d));
    const timer = setTimeout(() => {
      process.kill(-child.pid!, 'SIGKILL');
      reject(new Error(`tabula-helper ${args.join(' ')} still running after ${timeoutMs} ms (blocked on the fleet source?)`));
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      const rss = /maxrss=(\d+)/.exec(err);
      resolve({ code, last: JSON.parse(out.trim().split('\n').at(-1)!), maxRssKiB: rss ? Number(rss[1]) : NaN, ms: Date.now() - started });
    });
  });
}

describe('a fleet server over HTTP that sends 300 MB of policy', () => {
  let server: http.Server;
  let sent = 0;
  let url = '';
  beforeEach(async () => {
    sent = 0;
    const chunk = Buffer.alloc(1 << 20, ' ');
    server = http.createServer((req, res) => {
      if (!req.url?.startsWith('/policy.json') || req.url.endsWith('.sig')) return void res.writeHead(404).end();
      // No content-length: the client only learns the size by reading.
      res.writeHead(200, { 'content-type': 'application/json' });
      let left = 300;
      const pump = () => {
        while (left > 0) {
          left--;
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      res.on('close', () => (left = 0));
      pump();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  afterEach(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('is refused at the cap while streaming; the root helper stays small and still answers', async () => {
    writeSystemConfig(fleet.root, {
      image: { backend: 'rsync-tree', url: fleet.serverDir, channel: 'stable' },
      fleet: { url, trustedKeys: [fleet.key.publicKey] },
    });
    const r = await runHelper(['status']);
    expect(r.code).toBe(0);
    expect(r.last.type).toBe('result');
    // The old helper read all 300 MB (and used ~1 GB doing it).
    expect(sent).toBeLessThan(32 << 20);
    expect(r.maxRssKiB).toBeLessThan(200 * 1024);

    sent = 0;
    const err = await fetchFleetFile({ url, sshOptions: [], connectTimeoutSeconds: 5 }, 'policy.json', { maxBytes: 256 * 1024 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TabulaError);
    expect((err as TabulaError).message).toBe('policy.json on the fleet server is larger than 262144 bytes: refused.');
    expect(sent).toBeLessThan(32 << 20);
  });
});

describe('a fleet folder with something other than a file where the policy should be', () => {
  const source = () => ({ url: fleet.serverDir, sshOptions: [], connectTimeoutSeconds: 5 });
  beforeEach(() => {
    writeSystemConfig(fleet.root, {
      image: { backend: 'rsync-tree', url: fleet.serverDir, channel: 'stable' },
      fleet: { url: fleet.serverDir, trustedKeys: [fleet.key.publicKey] },
    });
  });

  it.each([
    ['a FIFO nobody writes to', (f: string) => execFileSync('mkfifo', [f]), /is not a regular file \(a pipe\)/],
    ['the /dev/zero device', (f: string) => execFileSync('mknod', [f, 'c', '1', '5']), /is not a regular file \(a device\)/],
    ['a link to a file of this machine', (f: string) => fs.symlinkSync('/etc/passwd', f), /symbolic link/],
  ])('%s: the helper neither blocks nor reads it, and says why', async (_what, make, reason) => {
    make(path.join(fleet.serverDir, 'policy.json'));
    const r = await runHelper(['status']);
    expect(r.code).toBe(0);
    expect(r.last.type).toBe('result');
    expect(r.maxRssKiB).toBeLessThan(200 * 1024);
    const err = await fetchFleetFile(source(), 'policy.json').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TabulaError);
    expect((err as TabulaError).code).toBe('image-invalid');
    expect((err as TabulaError).message).toMatch(reason);
  });
});

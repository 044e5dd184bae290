// rsync-tree backend end to end with real rsync (local folder and over a real sshd): v1 → v2 moves
// only the changed files, staged pointer and rollback behave, and every kind of bad image is refused
// with the running deployment untouched.
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { TabulaError } from '../../src-main/common/errors';
import { publishRsyncTree, writeSigned } from '../../src-main/fleet-publish';
import { generateKeyPair } from '../../src-main/core/signing';
import { readSymlink } from '../../src-main/core/image/deployments-dir';
import { createRsyncTreeBackend } from '../../src-main/core/image/rsync-tree';
import { createImageFleet, fakeBootloaderBoot, type ImageFleet } from '../fixtures/image-fleet';
import { startSshServer, type SshServer } from '../fixtures/sshd';

let fleet: ImageFleet;
const opened: { close(): void }[] = [];
const backendFor = (url: string, sshOptions: string[] = []) => {
  const b = createRsyncTreeBackend({ root: fleet.root, source: { url, sshOptions, connectTimeoutSeconds: 5 }, channel: 'stable', trustedKeys: [fleet.key.publicKey] });
  opened.push(b);
  return b;
};
const publish = (version: string, tree: string) => publishRsyncTree({ treeDir: tree, outDir: fleet.serverDir, version, channel: 'stable', privateKeyPem: fleet.key.privateKeyPem });
const nextTarget = () => readSymlink(path.join(fleet.root, 'var/lib/tabula/next'));
const deployedFile = (version: string, rel: string) => path.join(fleet.root, 'var/lib/tabula/deployments', version, 'tree', rel);

async function rejection(p: Promise<unknown>): Promise<TabulaError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TabulaError);
  return err as TabulaError;
}

/** v1 published, pulled and booted: the state most tests start from. */
async function bootedOnV1(url = fleet.serverDir) {
  publish('1.0', fleet.makeTree('v1', '1.0', 100));
  await backendFor(url).stage();
  fakeBootloaderBoot(fleet.root);
}

/** v2 = v1 with `changed` files rewritten. Returns the changed content size. */
function publishV2(changed = 3): number {
  const t = fleet.makeTree('v2', '2.0', 100);
  const later = new Date(Date.now() + 3600_000); // a rebuild happens later than the last one
  for (let i = 0; i < changed; i++) {
    const f = path.join(t, `usr/share/data/d${i % 10}/f${i}.bin`);
    fs.writeFileSync(f, Buffer.alloc(8192, `v2 content ${i} `));
    fs.utimesSync(f, later, later);
  }
  // makeTree gives every tree fresh mtimes: give the unchanged files v1's, as a build system keeping
  // unchanged files would (rsync then has nothing to compare for them).
  const v1 = path.join(fleet.serverDir, 'images/1.0/tree');
  for (let i = changed; i < 100; i++) {
    const rel = `usr/share/data/d${i % 10}/f${i}.bin`;
    const st = fs.statSync(path.join(v1, rel));
    fs.utimesSync(path.join(t, rel), st.atime, st.mtime);
  }
  publish('2.0', t);
  return changed * 8192 + fs.statSync(path.join(t, 'usr/lib/os-release')).size;
}

beforeEach(() => {
  fleet = createImageFleet();
});
afterEach(() => {
  opened.splice(0).forEach((b) => b.close());
  fleet.dispose();
});

describe('rsync-tree from a local folder', () => {
  it('first pull installs v1 and points the next boot at it', async () => {
    publish('1.0', fleet.makeTree('v1', '1.0', 20));
    const r = await backendFor(fleet.serverDir).stage();
    expect(r.version).toBe('1.0');
    expect(nextTarget()).toBe('deployments/1.0');
    expect(fs.readFileSync(deployedFile('1.0', 'usr/lib/os-release'), 'utf8')).toContain('VERSION_ID=1.0');
    expect(fs.readlinkSync(deployedFile('1.0', 'etc/os-release'))).toBe('../usr/lib/os-release');
  });

  it('v1 → v2 transfers only the changed files, shares the rest on disk, stages v2, and rolls back', async () => {
    await bootedOnV1();
    const changedBytes = publishV2(3);
    const backend = backendFor(fleet.serverDir);
    expect((await backend.check()).version).toBe('2.0');
    const r = await backend.stage();
    // Local transfers report the bytes the receiver read; unchanged files were hard-linked, not sent.
    expect(r.bytesReceived).toBeLessThan(changedBytes * 1.1 + 4096);
    expect(r.filesReused).toBeGreaterThanOrEqual(96);
    const unchanged = 'usr/share/data/d5/f55.bin';
    expect(fs.statSync(deployedFile('2.0', unchanged)).ino).toBe(fs.statSync(deployedFile('1.0', unchanged)).ino);
    expect(fs.readFileSync(deployedFile('2.0', 'usr/share/data/d0/f0.bin'), 'utf8')).toMatch(/^v2 content 0/);
    const s = backend.status();
    expect(s.booted?.version).toBe('1.0');
    expect(s.staged?.version).toBe('2.0');
    expect(s.rollback?.version).toBe('1.0');
    expect(nextTarget()).toBe('deployments/2.0');

    const after = backend.rollback();
    expect(nextTarget()).toBe('deployments/1.0');
    expect(after.staged).toBeNull();
    expect(after.booted?.version).toBe('1.0');
  });

  it('a deployment\'s top folder (the `/` it boots as) is 0755 even when the caller\'s umask is 077, on the full and the delta path', async () => {
    const saved = process.umask(0o077);
    try {
      await bootedOnV1();
      publishV2();
      await backendFor(fleet.serverDir).stage();
    } finally {
      process.umask(saved);
    }
    for (const v of ['1.0', '2.0']) expect(fs.statSync(path.join(fleet.root, 'var/lib/tabula/deployments', v, 'tree')).mode & 0o777, v).toBe(0o755);
  });

  it("an update's /usr is no newer than its image's /etc/.updated, so systemd does not redo ldconfig at every boot (delta path)", async () => {
    // Image 1 built two hours ago; image 2 now, its build ending with systemd-update-done (/etc/.updated).
    const v1 = fleet.makeTree('v1', '1.0', 20);
    const built = new Date(Date.now() - 2 * 3600_000);
    fs.utimesSync(path.join(v1, 'usr'), built, built);
    publish('1.0', v1);
    await backendFor(fleet.serverDir).stage();
    fakeBootloaderBoot(fleet.root);
    const v2 = fleet.makeTree('v2', '2.0', 20);
    fs.writeFileSync(path.join(v2, 'usr/share/new-in-2'), 'new\n');
    fs.writeFileSync(path.join(v2, 'etc/.updated'), '# written by systemd-update-done\n');
    publish('2.0', v2);
    // The pull runs later than the image's build, as on a laptop.
    await new Promise((r) => setTimeout(r, 1100));
    const r = await backendFor(fleet.serverDir).stage();
    expect(r.filesReused).toBeGreaterThan(0); // the delta path
    const usr = fs.statSync(deployedFile('2.0', 'usr')).mtimeMs;
    expect(usr).toBeLessThanOrEqual(fs.statSync(deployedFile('2.0', 'etc/.updated')).mtimeMs);
    expect(fs.readFileSync(deployedFile('2.0', 'usr/share/new-in-2'), 'utf8')).toBe('new\n');
  });

  it('keeps the booted and one previous deployment, no more', async () => {
    await bootedOnV1();
    publishV2();
    await backendFor(fleet.serverDir).stage();
    fakeBootloaderBoot(fleet.root);
    publish('3.0', fleet.makeTree('v3', '3.0', 100));
    await backendFor(fleet.serverDir).stage();
    const left = fs.readdirSync(path.join(fleet.root, 'var/lib/tabula/deployments')).sort();
    expect(left).toEqual(['2.0', '3.0']);
    fakeBootloaderBoot(fleet.root);
    // Booted 3.0: rollback goes to the one previous version.
    expect(backendFor(fleet.serverDir).rollback().staged?.version).toBe('2.0');
  });

  it('refuses a tampered file (same size, other bytes) and leaves the running deployment alone', async () => {
    await bootedOnV1();
    publishV2();
    fs.writeFileSync(path.join(fleet.serverDir, 'images/2.0/tree/usr/share/data/d1/f1.bin'), Buffer.alloc(8192, 'evil'));
    const err = await rejection(backendFor(fleet.serverDir).stage());
    expect(err.code).toBe('image-invalid');
    expect(err.details?.join('\n')).toContain('usr/share/data/d1/f1.bin: content does not match its checksum');
    expect(nextTarget()).toBe('deployments/1.0');
    expect(fs.existsSync(path.join(fleet.root, 'var/lib/tabula/deployments/2.0'))).toBe(false);
    expect(fs.existsSync(path.join(fleet.root, 'var/lib/tabula/deployments/2.0.partial'))).toBe(false);
  });

  it('refuses a file whose owner differs from the signed manifest', async () => {
    publish('1.0', fleet.makeTree('v1', '1.0', 10));
    fs.chownSync(path.join(fleet.serverDir, 'images/1.0/tree/usr/share/data/d1/f1.bin'), 4242, 4242);
    const err = await rejection(backendFor(fleet.serverDir).stage());
    expect(err.details).toContain('usr/share/data/d1/f1.bin: owned by 4242:4242, expected 0:0');
    expect(nextTarget()).toBeNull();
  });

  it('keeps the owners the manifest names (system users in a root tree)', async () => {
    const t = fleet.makeTree('v1', '1.0', 10);
    fs.chownSync(path.join(t, 'usr/share/data'), 101, 102);
    fs.lchownSync(path.join(t, 'etc/os-release'), 103, 104);
    publish('1.0', t);
    await backendFor(fleet.serverDir).stage();
    fakeBootloaderBoot(fleet.root);
    const t2 = fleet.makeTree('v2', '2.0', 10);
    fs.chownSync(path.join(t2, 'usr/share/data'), 101, 102);
    fs.lchownSync(path.join(t2, 'etc/os-release'), 103, 104);
    publish('2.0', t2);
    await backendFor(fleet.serverDir).stage();
    expect(fs.statSync(deployedFile('2.0', 'usr/share/data'))).toMatchObject({ uid: 101, gid: 102 });
    expect(fs.lstatSync(deployedFile('2.0', 'etc/os-release'))).toMatchObject({ uid: 103, gid: 104 });
  });

  it('refuses a truncated file with a reason saying so', async () => {
    await bootedOnV1();
    publishV2();
    fs.truncateSync(path.join(fleet.serverDir, 'images/2.0/tree/usr/share/data/d2/f2.bin'), 100);
    const err = await rejection(backendFor(fleet.serverDir).stage());
    expect(err.details?.join('\n')).toMatch(/f2\.bin: 100 bytes, expected 8192 \(truncated/);
    expect(nextTarget()).toBe('deployments/1.0');
  });

  it('refuses an extra file the manifest does not list on a first install, and never fetches it on an update', async () => {
    publish('1.0', fleet.makeTree('v1', '1.0', 100));
    fs.writeFileSync(path.join(fleet.serverDir, 'images/1.0/tree/etc/backdoor'), 'x');
    const err = await rejection(backendFor(fleet.serverDir).stage());
    expect(err.details).toContain('etc/backdoor: not in the manifest');
    expect(nextTarget()).toBeNull();
    fs.rmSync(path.join(fleet.serverDir, 'images/1.0/tree/etc/backdoor'));
    await backendFor(fleet.serverDir).stage();
    fakeBootloaderBoot(fleet.root);
    publishV2();
    fs.writeFileSync(path.join(fleet.serverDir, 'images/2.0/tree/etc/backdoor'), 'x');
    await backendFor(fleet.serverDir).stage();
    expect(fs.existsSync(deployedFile('2.0', 'etc/backdoor'))).toBe(false);
  });

  it('refuses a manifest edited after signing, a missing signature, and another key', async () => {
    await bootedOnV1();
    publishV2();
    const manifest = path.join(fleet.serverDir, 'images/2.0/manifest.json');
    const original = fs.readFileSync(manifest);
    fs.writeFileSync(manifest, original.toString().replace('"mode":420', '"mode":2541'));
    expect((await rejection(backendFor(fleet.serverDir).stage())).message).toMatch(/not signed by a fleet key this machine trusts/);
    fs.writeFileSync(manifest, original);
    fs.rmSync(`${manifest}.sig`);
    expect((await rejection(backendFor(fleet.serverDir).stage())).message).toMatch(/has no signature/);
    writeSigned(manifest, original, generateKeyPair().privateKeyPem);
    expect((await rejection(backendFor(fleet.serverDir).stage())).code).toBe('signature-invalid');
    // And a channel file signed by a stranger.
    writeSigned(path.join(fleet.serverDir, 'channels/stable.json'), fs.readFileSync(path.join(fleet.serverDir, 'channels/stable.json')), generateKeyPair().privateKeyPem);
    expect((await rejection(backendFor(fleet.serverDir).check())).code).toBe('signature-invalid');
    expect(nextTarget()).toBe('deployments/1.0');
  });

  it.each([
    ['..', '../../../etc/shadow', /climbs out of the tree/],
    ['an absolute path', '/etc/shadow', /is absolute/],
    ['a duplicate path', 'etc/hostname', /twice/],
  ])('refuses a validly signed manifest with %s', async (_what, bad, reason) => {
    await bootedOnV1();
    publishV2();
    const manifest = path.join(fleet.serverDir, 'images/2.0/manifest.json');
    const m = JSON.parse(fs.readFileSync(manifest, 'utf8'));
    m.entries.push({ path: bad, type: 'file', mode: 0o644, size: 1, sha256: 'a'.repeat(64) });
    writeSigned(manifest, JSON.stringify(m), fleet.key.privateKeyPem);
    const err = await rejection(backendFor(fleet.serverDir).stage());
    expect(err.code).toBe('image-invalid');
    expect(err.message).toMatch(reason);
    expect(nextTarget()).toBe('deployments/1.0');
  });

  it('refuses a signed manifest whose link points out of the image', async () => {
    await bootedOnV1();
    publishV2();
    const manifest = path.join(fleet.serverDir, 'images/2.0/manifest.json');
    const m = JSON.parse(fs.readFileSync(manifest, 'utf8'));
    m.entries.push({ path: 'etc/escape', type: 'symlink', mode: 0o777, size: 0, target: '../../../../root' });
    writeSigned(manifest, JSON.stringify(m), fleet.key.privateKeyPem);
    expect((await rejection(backendFor(fleet.serverDir).stage())).message).toMatch(/pointing outside the image/);
  });

  it('says the server is unreachable when the folder is not there', async () => {
    await bootedOnV1();
    const err = await rejection(backendFor(path.join(fleet.dir, 'not-mounted')).check());
    expect(err.code).toBe('image-unreachable');
    expect(err.retryable).toBe(true);
  });

  it('reimage lays down a fresh verified copy and resets /etc and /var state at the next boot', async () => {
    await bootedOnV1();
    const state = path.join(fleet.root, 'var/lib/tabula/state/etc');
    fs.mkdirSync(state, { recursive: true });
    fs.writeFileSync(path.join(state, 'local-change'), 'x');
    const before = fs.statSync(deployedFile('1.0', 'usr/share/data/d5/f55.bin')).ino;
    // A file altered in place, size and times kept: rsync's quick check would take it as unchanged.
    const altered = deployedFile('1.0', 'usr/share/data/d7/f17.bin');
    const st = fs.statSync(altered);
    const bytes = fs.readFileSync(altered);
    bytes[0] = bytes[0]! ^ 0xff;
    fs.writeFileSync(altered, bytes);
    fs.utimesSync(altered, st.atime, st.mtime);
    // And a setuid file planted in the running tree: a fresh copy holds only what the manifest lists.
    fs.writeFileSync(deployedFile('1.0', 'usr/share/data/planted'), '#!/bin/sh\nexec /bin/sh -p\n', { mode: 0o4755 });
    const backend = backendFor(fleet.serverDir);
    const r = await backend.reimage();
    expect(backend.status().reimagePending).toBe(true);
    expect(fs.statSync(deployedFile('1.0', 'usr/share/data/d5/f55.bin')).ino).not.toBe(before);
    expect(fs.existsSync(deployedFile('1.0', 'usr/share/data/planted'))).toBe(false);
    expect(fs.readFileSync(deployedFile('1.0', 'usr/share/data/d7/f17.bin'))).toEqual(fs.readFileSync(path.join(fleet.serverDir, 'images/1.0/tree/usr/share/data/d7/f17.bin')));
    // What the machine already had right was copied locally: about one file crossed the network.
    expect(r.bytesReceived).toBeLessThan(64 * 1024);
    fakeBootloaderBoot(fleet.root);
    expect(fs.existsSync(state)).toBe(false);
    expect(backendFor(fleet.serverDir).status().reimagePending).toBe(false);
  });

  it('reimage takes only regular files of the image\'s content from the running tree, with the manifest\'s mode and owner: a FIFO planted there (it would hang the helper) or a link to an identical file is fetched instead', async () => {
    await bootedOnV1();
    // A FIFO with no writer: opening it to copy would block the root helper for ever.
    const rel = 'usr/share/data/d4/f44.bin';
    fs.rmSync(deployedFile('1.0', rel));
    expect(spawnSync('mkfifo', [deployedFile('1.0', rel)]).status).toBe(0);
    // A file with the image's content but setuid and another owner, and a link to an identical file
    // in its place: the copy holds the manifest's mode and owner, and a file where the link was.
    const suid = deployedFile('1.0', 'usr/share/data/d2/f32.bin');
    fs.chmodSync(suid, 0o4755);
    fs.chownSync(suid, 65534, 65534);
    const linked = deployedFile('1.0', 'usr/share/data/d6/f66.bin');
    fs.copyFileSync(linked, `${linked}.same`);
    fs.rmSync(linked);
    fs.symlinkSync(`${linked}.same`, linked);
    const r = await backendFor(fleet.serverDir).reimage();
    expect(fs.statSync(suid).mode & 0o7777).toBe(0o644);
    expect(fs.statSync(suid).uid).toBe(0);
    expect(fs.lstatSync(linked).isFile()).toBe(true);
    expect(fs.existsSync(`${linked}.same`)).toBe(false);
    expect(fs.lstatSync(deployedFile('1.0', rel)).isFile()).toBe(true);
    expect(fs.readFileSync(deployedFile('1.0', rel))).toEqual(fs.readFileSync(path.join(fleet.serverDir, 'images/1.0/tree', rel)));
    expect(r.bytesReceived).toBeGreaterThan(0);
  });

  it("the deployments are root's alone: an account owning a folder in the image cannot change a tree that boots as / through /var", async () => {
    // A service account (here nobody) owns a folder of the image, as e.g. polkitd or a daemon's own do.
    const t = fleet.makeTree('v1', '1.0', 100);
    fs.chownSync(path.join(t, 'usr/share/data/d1'), 65534, 65534);
    publish('1.0', t);
    for (let d = fleet.root; d !== path.dirname(d); d = path.dirname(d)) fs.chmodSync(d, fs.statSync(d).mode | 0o055);
    await backendFor(fleet.serverDir).stage();
    fakeBootloaderBoot(fleet.root);
    const plant = deployedFile('1.0', 'usr/share/data/d1/planted');
    const asNobody = () => spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'sh', '-c', 'echo evil > "$1"', 'sh', plant], { encoding: 'utf8' });
    expect(asNobody().stderr).toMatch(/Permission denied/);
    expect(fs.existsSync(plant)).toBe(false);
    // A laptop whose deployments a version before this one made readable: the attack goes through...
    const deployments = path.join(fleet.root, 'var/lib/tabula/deployments');
    fs.chmodSync(deployments, 0o755);
    expect(asNobody().status).toBe(0);
    // ...and the next reimage closes the folder and leaves the plant out of the fresh tree.
    await backendFor(fleet.serverDir).reimage();
    expect(fs.statSync(deployments).mode & 0o777).toBe(0o700);
    expect(fs.existsSync(plant)).toBe(false);
    expect(asNobody().stderr).toMatch(/Permission denied/);
  });

  it('reimage onto a newer version copies what the running one shares with it and fetches only the changed files', async () => {
    await bootedOnV1();
    const changedBytes = publishV2(3);
    const r = await backendFor(fleet.serverDir).reimage();
    expect(r.version).toBe('2.0');
    expect(r.bytesReceived).toBeLessThan(changedBytes * 1.1 + 4096);
    expect(nextTarget()).toBe('deployments/2.0');
    expect(fs.readFileSync(deployedFile('2.0', 'usr/share/data/d0/f0.bin'), 'utf8')).toMatch(/^v2 content 0/);
    const unchanged = 'usr/share/data/d5/f55.bin';
    expect(fs.readFileSync(deployedFile('2.0', unchanged))).toEqual(fs.readFileSync(deployedFile('1.0', unchanged)));
    expect(fs.statSync(deployedFile('2.0', unchanged)).ino).not.toBe(fs.statSync(deployedFile('1.0', unchanged)).ino);
    // Folder times as on the delta path (an update's /usr no newer than the image's).
    const seconds = (v: string) => Math.floor(fs.statSync(deployedFile(v, 'usr')).mtimeMs / 1000);
    expect(seconds('2.0')).toBe(seconds('1.0'));
  });

  it('reimage refuses a tampered fleet server and leaves the running deployment and the next boot alone', async () => {
    await bootedOnV1();
    // The laptop's copy was altered, so the file must come from the server, whose copy was tampered with.
    const rel = 'usr/share/data/d3/f23.bin';
    const local = deployedFile('1.0', rel);
    fs.writeFileSync(local, Buffer.alloc(8192, 'local edit'));
    fs.writeFileSync(path.join(fleet.serverDir, 'images/1.0/tree', rel), Buffer.alloc(8192, 'evil'));
    const backend = backendFor(fleet.serverDir);
    const err = await rejection(backend.reimage());
    expect(err.code).toBe('image-invalid');
    expect(err.details).toContain(`${rel}: content does not match its checksum`);
    expect(nextTarget()).toBe('deployments/1.0');
    expect(backend.status().reimagePending).toBe(false);
    expect(fs.readdirSync(path.join(fleet.root, 'var/lib/tabula/deployments'))).toEqual(['1.0']);
    expect(fs.readFileSync(deployedFile('1.0', 'usr/share/data/d5/f55.bin'), 'utf8')).toMatch(/^file 55 /);
    // A manifest edited after signing is refused before anything is copied.
    const manifest = path.join(fleet.serverDir, 'images/1.0/manifest.json');
    fs.writeFileSync(manifest, fs.readFileSync(manifest, 'utf8').replace('"mode":420', '"mode":2541'));
    expect((await rejection(backend.reimage())).message).toMatch(/not signed by a fleet key this machine trusts/);
    expect(fs.readdirSync(path.join(fleet.root, 'var/lib/tabula/deployments'))).toEqual(['1.0']);
    expect(backend.status().reimagePending).toBe(false);
  });
});

describe('rsync-tree over a real sshd', () => {
  let sshd: SshServer;
  beforeAll(async () => {
    sshd = await startSshServer();
  });
  afterAll(async () => {
    await sshd?.dispose();
  });

  it('pulls v1 → v2 over ssh sending about the changed bytes only', async () => {
    const url = sshd.url(fleet.serverDir);
    publish('1.0', fleet.makeTree('v1', '1.0', 100));
    await backendFor(url, sshd.sshOptions).stage();
    fakeBootloaderBoot(fleet.root);
    const changedBytes = publishV2(3);
    const r = await backendFor(url, sshd.sshOptions).stage();
    expect(r.version).toBe('2.0');
    // Over the wire: the changed content plus rsync's file list (~100 entries) and protocol overhead.
    expect(r.bytesReceived).toBeLessThan(changedBytes + 16 * 1024);
    expect(r.bytesReceived).toBeGreaterThan(changedBytes / 4); // it did transfer something (compressible content)
    expect(nextTarget()).toBe('deployments/2.0');
  });

  it('an unreachable server fails with a clear reason and the running deployment untouched', async () => {
    const url = sshd.url(fleet.serverDir);
    publish('1.0', fleet.makeTree('v1', '1.0', 10));
    await backendFor(url, sshd.sshOptions).stage();
    fakeBootloaderBoot(fleet.root);
    await sshd.stop();
    try {
      const err = await rejection(backendFor(url, sshd.sshOptions).stage());
      expect(err.code).toBe('image-unreachable');
      expect(err.message).toMatch(/could not be reached|connect|refused/i);
      expect(nextTarget()).toBe('deployments/1.0');
    } finally {
      await sshd.start();
    }
  });
});

describe('rsync-tree interrupted pulls', () => {
  it('an interrupted pull keeps what it got, reports it, and the next pull resumes instead of starting over', async () => {
    await bootedOnV1();
    const t = fleet.makeTree('v2', '2.0', 100);
    for (let i = 0; i < 4; i++) fs.writeFileSync(path.join(t, `usr/share/big-${i}.bin`), crypto.randomBytes(512 * 1024));
    publish('2.0', t);
    const slow = createRsyncTreeBackend({ root: fleet.root, source: { url: fleet.serverDir, sshOptions: [], connectTimeoutSeconds: 5 }, channel: 'stable', trustedKeys: [fleet.key.publicKey], bandwidthKBps: 1000 });
    const first = slow.stage();
    setTimeout(() => slow.cancel(), 1200);
    const err = await rejection(first);
    expect(err.code).toBe('cancelled');
    expect(err.message).toMatch(/resumes/);
    expect(nextTarget()).toBe('deployments/1.0');
    const kept = path.join(fleet.root, 'var/lib/tabula/deployments/2.0.partial/tree/usr/share');
    const keptBytes = fs.readdirSync(kept).filter((n) => n.startsWith('big-')).reduce((n, f) => n + fs.statSync(path.join(kept, f)).size, 0);
    expect(keptBytes).toBeGreaterThan(256 * 1024);

    const r = await backendFor(fleet.serverDir).stage();
    expect(r.version).toBe('2.0');
    // Only what was missing crossed the wire the second time.
    expect(r.bytesReceived).toBeLessThan(4 * 512 * 1024 - keptBytes + 64 * 1024);
    expect(nextTarget()).toBe('deployments/2.0');
  });
});

describe('rsync-tree with reproducible builds', () => {
  it('gets a changed file right even when size and mtime are the same as the old one (rsync quick check would miss it)', async () => {
    const epoch = new Date('2024-01-01T00:00:00Z');
    const stamp = (t: string) => {
      for (const f of fs.readdirSync(t, { recursive: true }) as string[]) fs.lutimesSync(path.join(t, f), epoch, epoch);
      return t;
    };
    publish('1.0', stamp(fleet.makeTree('v1', '1.0', 20)));
    await backendFor(fleet.serverDir).stage();
    fakeBootloaderBoot(fleet.root);
    const t = fleet.makeTree('v2', '2.0', 20);
    fs.writeFileSync(path.join(t, 'usr/share/data/d3/f3.bin'), Buffer.alloc(8192, 'same size, new bytes'));
    publish('2.0', stamp(t));
    const r = await backendFor(fleet.serverDir).stage();
    expect(r.version).toBe('2.0');
    expect(fs.readFileSync(deployedFile('2.0', 'usr/share/data/d3/f3.bin'), 'utf8')).toMatch(/^same size, new bytes/);
    expect(fs.readFileSync(deployedFile('2.0', 'usr/lib/os-release'), 'utf8')).toContain('VERSION_ID=2.0');
  });
});

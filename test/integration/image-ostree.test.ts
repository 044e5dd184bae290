// ostree backend against a real repository served over HTTP on 127.0.0.1 and a sysroot in a temp
// folder: signed v1 → v2, only changed objects fetched (bytes counted by the server), deploy,
// rollback, reimage with --no-merge; tampered, unsigned, wrongly signed and unreachable → refused.
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TabulaError } from '../../src-main/common/errors';
import { publishOstree } from '../../src-main/fleet-publish';
import { createOstreeBackend } from '../../src-main/core/image/ostree';
import { createImageFleet, fakeBootloaderBoot, startCountingHttpServer, writeSystemConfig, type CountingHttpServer, type ImageFleet } from '../fixtures/image-fleet';
import { createSandbox, startHeadlessAgent } from '../fixtures/headless-agent';

let fleet: ImageFleet;
let http: CountingHttpServer;
const REF = 'tabula/stable/x86_64';

beforeEach(async () => {
  fleet = createImageFleet();
  fleet.initOstreeSysroot();
  http = await startCountingHttpServer(fleet.serverDir);
});
afterEach(async () => {
  await http.close();
  fleet.dispose();
});

const backend = (url = `${http.url}/repo`) => createOstreeBackend({ sysroot: fleet.root, url, ref: REF, osName: 'tabula', gpgKeyring: fleet.gpgKey().keyring });
const publish = (version: string, tree: string, gpg = fleet.gpgKey()) => publishOstree({ treeDir: tree, outDir: fleet.serverDir, version, channel: 'stable', ref: REF, gpg });

async function rejection(p: Promise<unknown>): Promise<TabulaError> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(TabulaError);
  return err as TabulaError;
}

async function bootedOnV1() {
  const { commit } = publish('1.0', fleet.makeTree('v1', '1.0', 60, 'ostree'));
  await backend().stage();
  fakeBootloaderBoot(fleet.root, commit);
  return commit;
}

/** v2 = v1 with `changed` files replaced by random (incompressible) bytes; returns their size. */
function publishV2(changed = 3) {
  const t = fleet.makeTree('v2', '2.0', 60, 'ostree');
  for (let i = 0; i < changed; i++) fs.writeFileSync(path.join(t, `usr/share/data/d${i}/f${i}.bin`), crypto.randomBytes(64 * 1024));
  return { ...publish('2.0', t), changedBytes: changed * 64 * 1024 };
}

describe('ostree backend', { timeout: 90_000 }, () => { // real ostree commits and pulls: 35-56 s under load ~8
  it('v1 → v2: check reads metadata only, pull fetches only the changed objects, v2 is deployed for next boot, rollback returns to v1', async () => {
    const v1 = await bootedOnV1();
    const { commit: v2, changedBytes } = publishV2(3);
    http.reset();
    const available = await backend().check();
    expect(available).toEqual({ version: '2.0', checksum: v2 });
    expect(http.bytesSent()).toBeLessThan(8 * 1024); // summary + commit, no file objects
    expect(http.requests().some((r) => r.includes('.filez'))).toBe(false);

    http.reset();
    const r = await backend().stage();
    expect(r.version).toBe('2.0');
    // The three changed files, plus dirtree/dirmeta/commit metadata: nowhere near the 60-file tree.
    expect(http.bytesSent()).toBeLessThan(changedBytes * 1.1 + 16 * 1024);
    expect(http.bytesSent()).toBeGreaterThan(changedBytes);
    const s = await backend().status();
    expect(s.booted).toEqual({ version: '1.0', checksum: v1 });
    expect(s.staged).toEqual({ version: '2.0', checksum: v2 });
    expect(s.rollback?.version).toBe('1.0');
    const deployed = path.join(fleet.root, 'ostree/deploy/tabula/deploy', `${v2}.0`, 'usr/lib/os-release');
    expect(fs.readFileSync(deployed, 'utf8')).toContain('VERSION_ID=2.0');

    const back = await backend().rollback();
    expect(back.staged).toBeNull();
    expect(back.booted?.version).toBe('1.0');
  });

  it('publishing an update adds only the changed files to the archive repo, signed, with the previous version as parent, and leaves no scratch repo behind', () => {
    const repo = path.join(fleet.serverDir, 'repo');
    const filez = () => execFileSync('find', [path.join(repo, 'objects'), '-name', '*.filez'], { encoding: 'utf8' }).split('\n').filter(Boolean).length;
    const { commit: v1 } = publish('1.0', fleet.makeTree('v1', '1.0', 60, 'ostree'));
    const before = filez();
    const { commit: v2 } = publishV2(3);
    expect(filez()).toBe(before + 4); // the three changed files and os-release
    const log = execFileSync('ostree', [`--repo=${repo}`, 'log', REF], { encoding: 'utf8' });
    expect(log).toMatch(new RegExp(`^commit ${v2}\\nParent: +${v1}\\n`));
    expect(execFileSync('ostree', [`--repo=${repo}`, 'rev-parse', REF], { encoding: 'utf8' }).trim()).toBe(v2);
    expect(fs.existsSync(path.join(repo, 'objects', v2.slice(0, 2), `${v2.slice(2)}.commitmeta`))).toBe(true); // the GPG signature
    expect(fs.readdirSync(path.join(repo, 'tmp')).filter((n) => n.startsWith('tabula-commit-'))).toEqual([]);
  });

  it('after booting v2, rollback makes v1 the next boot again', async () => {
    await bootedOnV1();
    const { commit: v2 } = publishV2();
    await backend().stage();
    fakeBootloaderBoot(fleet.root, v2);
    const s = await backend().rollback();
    expect(s.booted?.version).toBe('2.0');
    expect(s.staged?.version).toBe('1.0');
  });

  it('before staging, a running deployment whose entry systemd-bless-boot left counted is marked good once the boot is complete, so a broken next version has it to fall back to', async () => {
    const v1 = await bootedOnV1();
    publishV2();
    // This boot was v1's second counted try and reached boot-complete.target, but its entry was not
    // blessed (session 9's lab: systemd-bless-boot FAILED after a reimage).
    const entries = path.join(fleet.root, 'efi/loader/entries');
    fs.mkdirSync(entries, { recursive: true });
    fs.writeFileSync(path.join(entries, `tabula-ostree-${v1}.0+0-2.conf`), 'title v1\n');
    const b = (complete: boolean) => createOstreeBackend({ sysroot: fleet.root, url: `${http.url}/repo`, ref: REF, osName: 'tabula', gpgKeyring: fleet.gpgKey().keyring, syncEsp: async () => undefined, bootComplete: async () => complete });
    // Not judged yet (the target not reached): a pull stages v2 and leaves the counter to systemd.
    expect((await b(false).stage()).version).toBe('2.0');
    expect(fs.readdirSync(entries)).toEqual([`tabula-ostree-${v1}.0+0-2.conf`]);
    // The boot is complete: the next deployment (here the helpdesk's reset) marks v1's entry good
    // first, as systemd-bless-boot would have.
    await b(true).reimage();
    expect(fs.readdirSync(entries)).toEqual([`tabula-ostree-${v1}.0.conf`]);
    expect(fs.readFileSync(path.join(entries, `tabula-ostree-${v1}.0.conf`), 'utf8')).toBe('title v1\n');
  }, 180_000);

  it('a new version systemd-boot gave up on is recorded and removed, the status says so, it is not staged again (a newer one is), and a reimage lays down the running one', async () => {
    const v1 = await bootedOnV1();
    const { commit: v2 } = publishV2();
    await backend().stage();
    const sync: string[] = [];
    const b = () => createOstreeBackend({ sysroot: fleet.root, url: `${http.url}/repo`, ref: REF, osName: 'tabula', gpgKeyring: fleet.gpgKey().keyring, syncEsp: async () => void sync.push('esp') });
    // What tabula-ostree-esp and systemd-boot leave after three failed tries of v2: the machine booted v1.
    const entries = path.join(fleet.root, 'efi/loader/entries');
    fs.mkdirSync(entries, { recursive: true });
    fs.writeFileSync(path.join(entries, `tabula-ostree-${v1}.0.conf`), '');
    fs.writeFileSync(path.join(entries, `tabula-ostree-${v2}.0+1-2.conf`), '');
    expect((await b().status()).staged?.version).toBe('2.0'); // tries left: not failed yet
    expect(sync).toEqual([]);
    fs.renameSync(path.join(entries, `tabula-ostree-${v2}.0+1-2.conf`), path.join(entries, `tabula-ostree-${v2}.0+0-3.conf`));
    const s = await b().status();
    expect(s.failedBoot).toEqual({ version: '2.0', bootedInstead: '1.0' });
    expect(s.booted?.version).toBe('1.0');
    expect(s.staged).toBeNull();
    expect(fs.existsSync(path.join(fleet.root, 'ostree/deploy/tabula/deploy', `${v2}.0`))).toBe(false);
    expect(sync).toEqual(['esp']); // the ESP follows ostree's entries
    const again = await rejection(b().stage());
    expect(again.message).toBe("Version 2.0 failed to start on this computer before, so it is not installed again; waiting for a newer version.");
    expect((await b().status()).staged).toBeNull();
    // The helpdesk's reset never takes the version that failed: the running one, pristine.
    expect((await b().reimage()).note).toBe("Version 2.0, the channel's, failed to start on this computer, so the reset lays down a fresh copy of version 1.0, the one running.");
    expect((await b().status()).reimagePending).toBe(true);
    expect(fs.readdirSync(path.join(fleet.root, 'ostree/deploy/tabula/deploy')).filter((n) => /\.\d+$/.test(n)).sort()).toEqual([`${v1}.0`, `${v1}.1`]);
    // A damaged record is never read as "none failed" (2.0 would be staged again): staging and a
    // reset stop and name the file, which stays as it was (as rsync-tree's boot entries do).
    const record = path.join(fleet.root, 'var/lib/tabula/failed-boots.json');
    await b().rollback(); // the reset's staged copy of 1.0 dropped
    fs.writeFileSync(record, fs.readFileSync(record, 'utf8').slice(0, 30)); // a disk fault cuts it short
    const damaged = fs.readFileSync(record);
    expect((await rejection(b().stage())).message).toMatch(/^The record of versions that failed to start on this computer \(.*failed-boots\.json\) is not valid JSON.*: no version is installed until it is repaired or removed, so that one that failed is not installed again\.$/);
    expect((await rejection(b().reimage())).message).toMatch(/failed-boots\.json\) is not valid JSON/);
    expect((await b().status()).staged).toBeNull();
    expect(fs.readFileSync(record)).toEqual(damaged);
    const t3 = fleet.makeTree('v3', '3.0', 60, 'ostree');
    publish('3.0', t3);
    fs.writeFileSync(record, JSON.stringify([{ version: '2.0', bootedInstead: '1.0', at: new Date().toISOString() }]));
    expect((await b().stage()).version).toBe('3.0');
  }, 180_000);

  it('refuses a commit signed with a key the machine does not trust, and one without a signature', async () => {
    await bootedOnV1();
    const stranger = createImageFleet();
    try {
      publishV2(); // the summary must stay valid for the ref to be found; re-sign with a stranger below
      const t = fleet.makeTree('v3', '3.0', 60, 'ostree');
      publish('3.0', t, stranger.gpgKey());
      const err = await rejection(backend().stage());
      expect(err.code).toBe('signature-invalid');
      expect(err.message).toMatch(/not signed by a key this machine trusts/);
    } finally {
      stranger.dispose();
    }
    // No signature at all: commit and summary written without --gpg-sign.
    const repo = path.join(fleet.serverDir, 'repo');
    execFileSync('ostree', [`--repo=${repo}`, 'commit', `--branch=${REF}`, '--add-metadata-string=version=4.0', `--tree=dir=${fleet.makeTree('v4', '4.0', 5, 'ostree')}`]);
    fs.rmSync(path.join(repo, 'summary.sig'), { force: true });
    execFileSync('ostree', [`--repo=${repo}`, 'summary', '-u']);
    expect((await rejection(backend().check())).code).toBe('signature-invalid');
    const s = await backend().status();
    expect(s.booted?.version).toBe('1.0');
    expect(s.staged).toBeNull();
  });

  it('refuses a tampered object and leaves the deployments as they were', async () => {
    await bootedOnV1();
    publishV2(1);
    // Flip bytes in the biggest file object on the server (the changed random file).
    const objects = path.join(fleet.serverDir, 'repo/objects');
    const files = fs.readdirSync(objects, { recursive: true }).map(String).filter((f) => f.endsWith('.filez'));
    const biggest = files.map((f) => path.join(objects, f)).sort((a, b) => fs.statSync(b).size - fs.statSync(a).size)[0]!;
    const buf = fs.readFileSync(biggest);
    buf.fill(0x41, 200, 4000);
    fs.writeFileSync(biggest, buf);
    const err = await rejection(backend().stage());
    expect(['image-invalid', 'helper-failed']).toContain(err.code);
    expect(err.message).toMatch(/damaged|tampered|corrupt|checksum/i);
    const s = await backend().status();
    expect(s.staged).toBeNull();
    expect(s.booted?.version).toBe('1.0');
  });

  it('says the server is unreachable when nothing listens', async () => {
    await bootedOnV1();
    await http.close();
    const err = await rejection(backend().check());
    expect(err.code).toBe('image-unreachable');
    expect(err.retryable).toBe(true);
    http = await startCountingHttpServer(fleet.serverDir);
  });

  it('reimage deploys the current image with /etc reset (--no-merge), its kernel arguments kept, and marks /var for reset', async () => {
    const v1 = await bootedOnV1();
    // The running deployment with the kernel arguments an installer gave it (the lab's laptop: root by label, rw, the console).
    const kargs = ['root=LABEL=tabula-ostree', 'rw', 'console=ttyS0,115200', 'panic=10'];
    execFileSync('ostree', ['admin', 'deploy', `--sysroot=${fleet.root}`, '--os=tabula', ...kargs.map((k) => `--karg=${k}`), v1], { stdio: 'ignore' });
    execFileSync('ostree', ['admin', 'undeploy', `--sysroot=${fleet.root}`, '1'], { stdio: 'ignore' });
    const deployDir = path.join(fleet.root, 'ostree/deploy/tabula/deploy');
    const etc = path.join(deployDir, `${v1}.1`, 'etc');
    fs.writeFileSync(path.join(etc, 'local-admin-change'), 'x');
    await backend().reimage();
    const s = await backend().status();
    expect(s.reimagePending).toBe(true);
    const list = fs.readdirSync(deployDir).filter((n) => /\.\d+$/.test(n));
    const fresh = list.find((n) => n !== `${v1}.1`)!;
    expect(fs.existsSync(path.join(deployDir, fresh, 'etc/local-admin-change'))).toBe(false);
    expect(fs.existsSync(path.join(deployDir, fresh, 'etc/hostname'))).toBe(true);
    // The fresh copy boots like the one it replaces: its boot entry has the same kernel arguments.
    expect(kargsOfEntry(fresh)).toEqual(kargs);
  });

  it('refuses a reimage, changing nothing, when the running image has no boot entry to take the kernel arguments from', async () => {
    const v1 = await bootedOnV1();
    const entries = path.join(fleet.root, 'boot/loader/entries');
    for (const f of fs.readdirSync(entries)) fs.rmSync(path.join(entries, f));
    const err = await rejection(backend().reimage());
    expect(err.message).toContain('could not give the fresh copy its kernel arguments; nothing was changed');
    expect(fs.readdirSync(path.join(fleet.root, 'ostree/deploy/tabula/deploy')).filter((n) => /\.\d+$/.test(n))).toEqual([`${v1}.0`]);
    expect((await backend().status()).reimagePending).toBe(false);
  });
});

/** The kernel arguments of the boot entry ostree wrote for deployment `id` (<checksum>.<serial>), but ostree's own (ostree=, init= into /ostree/). */
function kargsOfEntry(id: string): string[] {
  const dir = path.join(fleet.root, 'boot/loader/entries');
  for (const f of fs.readdirSync(dir)) {
    const options = /^options (.+)$/m.exec(fs.readFileSync(path.join(dir, f), 'utf8'))![1]!.split(' ');
    const link = options.find((o) => o.startsWith('ostree='))!.slice('ostree='.length);
    if (path.basename(fs.readlinkSync(path.join(fleet.root, link))) === id) return options.filter((o) => !o.startsWith('ostree=') && !o.startsWith('init=/ostree/'));
  }
  throw new Error(`no boot entry for ${id}`);
}

describe('ostree through the agent and tabula-helper', { timeout: 90_000 }, () => {
  it('`tabula image check` and `pull` stage the signed new commit for the next boot', async () => {
    const sb = createSandbox();
    const machine = createImageFleet({ root: sb.env.TABULA_ROOT! });
    try {
      machine.initOstreeSysroot();
      // The machine trusts this test's fleet key: the keyring ships in the image.
      const keyring = path.join(machine.root, 'usr/share/defaults/tabula/fleet.gpg');
      fs.mkdirSync(path.dirname(keyring), { recursive: true });
      fs.copyFileSync(fleet.gpgKey().keyring, keyring);
      writeSystemConfig(machine.root, { image: { backend: 'ostree', url: `${http.url}/repo`, ostreeRef: REF, autoPull: false } });
      const { commit: v1 } = publish('1.0', fleet.makeTree('v1', '1.0', 10, 'ostree'));
      await createOstreeBackend({ sysroot: machine.root, url: `${http.url}/repo`, ref: REF, osName: 'tabula', gpgKeyring: keyring }).stage();
      fakeBootloaderBoot(machine.root, v1);
      const { commit: v2 } = publish('2.0', fleet.makeTree('v2', '2.0', 10, 'ostree'));

      await startHeadlessAgent(sb);
      const check = JSON.parse((await sb.cli(['image', 'check', '--json'])).stdout);
      expect(check.available).toEqual({ version: '2.0', checksum: v2 });
      expect(check.booted.version).toBe('1.0');
      const pulled = await sb.cli(['image', 'pull', '--json']);
      const s = JSON.parse(pulled.stdout);
      expect(s.state).toBe('staged');
      expect(s.reason).toBe('Version 2.0 is ready: restart to update.');
      expect(s.staged).toEqual({ version: '2.0', checksum: v2 });
    } finally {
      machine.dispose(); // clears the immutable flag ostree puts on deployments inside the sandbox root
      await sb.dispose();
    }
  });
});

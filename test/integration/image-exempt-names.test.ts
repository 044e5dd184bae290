// The attack: a fleet server (or whoever controls it) plants entries the signed manifest does not
// list into an image tree, under the name rsync's partial data once used (`.tabula-partial`) and
// under any other name, as a setuid file, a folder, a link or a fifo. Whatever the path (first
// install, update, reimage) and the transport (local folder, real sshd), nothing unsigned may reach
// a deployment: a first install is refused, naming the entry, nothing is staged and the download is
// deleted; an update and a reimage fetch only what the signed manifest lists, so the entry never comes.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { TabulaError } from '../../src-main/common/errors';
import { publishRsyncTree } from '../../src-main/fleet-publish';
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
const deployments = () => path.join(fleet.root, 'var/lib/tabula/deployments');
const nextTarget = () => readSymlink(path.join(fleet.root, 'var/lib/tabula/next'));

function tree(name: string, version: string): string {
  const t = fleet.makeTree(name, version, 20);
  fs.mkdirSync(path.join(t, 'usr/bin'));
  fs.writeFileSync(path.join(t, 'usr/bin/true'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  return t;
}
const publish = (version: string) => publishRsyncTree({ treeDir: tree(`v${version}`, version), outDir: fleet.serverDir, version, channel: 'stable', privateKeyPem: fleet.key.privateKeyPem });

/** Each plant changes a published tree on the server after signing; returns the path it planted. */
const plants: [string, (t: string) => string][] = [
  ['a setuid file named .tabula-partial in usr/bin', (t) => setuid(t, 'usr/bin/.tabula-partial')],
  ['a setuid file named .tabula-partial at the top', (t) => setuid(t, '.tabula-partial')],
  [
    'a folder named .tabula-partial holding a setuid shell, deep',
    (t) => {
      fs.mkdirSync(path.join(t, 'usr/share/data/d3/.tabula-partial'));
      setuid(t, 'usr/share/data/d3/.tabula-partial/sh');
      return 'usr/share/data/d3/.tabula-partial';
    },
  ],
  [
    'a link named .tabula-partial to /etc/shadow',
    (t) => {
      fs.symlinkSync('/etc/shadow', path.join(t, 'etc/.tabula-partial'));
      return 'etc/.tabula-partial';
    },
  ],
  [
    'an empty folder with an ordinary name',
    (t) => {
      fs.mkdirSync(path.join(t, 'usr/lib/hooks'));
      return 'usr/lib/hooks';
    },
  ],
  ['a setuid file with an ordinary name, three levels down', (t) => setuid(t, 'usr/share/data/d9/helper')],
];

function setuid(t: string, rel: string): string {
  fs.writeFileSync(path.join(t, rel), '#!/bin/sh\nexec /bin/sh -p\n');
  fs.chmodSync(path.join(t, rel), 0o4755);
  return rel;
}

/** Every entry of every deployment on the machine is in that deployment's signed manifest. */
function expectOnlySignedEntries() {
  for (const v of fs.readdirSync(deployments())) {
    const treeDir = path.join(deployments(), v, 'tree');
    const manifest = JSON.parse(fs.readFileSync(path.join(deployments(), v, 'manifest.json'), 'utf8')) as { entries: { path: string }[] };
    const signed = new Set(manifest.entries.map((e) => e.path));
    const found = (fs.readdirSync(treeDir, { recursive: true }) as string[]).sort();
    expect(found.filter((p) => !signed.has(p)), `unsigned entries in deployment ${v}`).toEqual([]);
  }
}

function expectNothingLeftBehind() {
  // No partial download (resumable or not) and no fresh reimage copy may remain after a refusal.
  expect(fs.readdirSync(deployments()).filter((n) => n.endsWith('.partial') || n.endsWith('.pristine'))).toEqual([]);
}

async function refusal(p: Promise<unknown>): Promise<TabulaError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err, 'the pull was accepted').toBeInstanceOf(TabulaError);
  return err as TabulaError;
}

function expectRefusedFor(err: TabulaError, planted: string) {
  expect(err.code).toBe('image-invalid');
  expect(err.message).toContain(`${planted}: not in the manifest`);
  expect(err.details).toContain(`${planted}: not in the manifest`);
}

beforeEach(() => {
  fleet = createImageFleet();
});
afterEach(() => {
  opened.splice(0).forEach((b) => b.close());
  fleet.dispose();
});

describe.each(plants)('an image tree with %s', (_what, plant) => {
  it('is refused on first install: nothing staged, the download deleted', async () => {
    publish('1.0');
    const planted = plant(path.join(fleet.serverDir, 'images/1.0/tree'));
    expectRefusedFor(await refusal(backendFor(fleet.serverDir).stage()), planted);
    expect(nextTarget()).toBeNull();
    expect(fs.readdirSync(deployments())).toEqual([]);
  });

  it('never reaches the fresh copy a reimage lays down', async () => {
    publish('1.0');
    await backendFor(fleet.serverDir).stage();
    fakeBootloaderBoot(fleet.root);
    const planted = plant(path.join(fleet.serverDir, 'images/1.0/tree'));
    // A reimage builds the tree from the signed manifest and fetches only files it lists.
    const backend = backendFor(fleet.serverDir);
    await backend.reimage();
    expect(nextTarget()).toBe('deployments/1.0');
    expect(backend.status().reimagePending).toBe(true);
    expect(fs.existsSync(path.join(deployments(), '1.0/tree', planted))).toBe(false);
    expectNothingLeftBehind();
    expectOnlySignedEntries();
  });

  it('never reaches the next boot on an update', async () => {
    publish('1.0');
    await backendFor(fleet.serverDir).stage();
    fakeBootloaderBoot(fleet.root);
    publish('2.0');
    plant(path.join(fleet.serverDir, 'images/2.0/tree'));
    // The update fetches only what the signed manifest lists, so the plant never crosses the wire.
    await backendFor(fleet.serverDir).stage();
    expect(nextTarget()).toBe('deployments/2.0');
    expectNothingLeftBehind();
    expectOnlySignedEntries();
  });
});

describe('entries left in a resumed download', () => {
  it('an entry in the partial tree that the manifest does not list refuses the pull and deletes the partial tree', async () => {
    publish('1.0');
    await backendFor(fleet.serverDir).stage();
    fakeBootloaderBoot(fleet.root);
    publish('2.0');
    // What an earlier, interrupted run against a hostile server could have left in the partial tree.
    const partialTree = path.join(deployments(), '2.0.partial/tree');
    fs.mkdirSync(path.join(partialTree, 'usr/bin'), { recursive: true });
    setuid(partialTree, 'usr/bin/.tabula-partial');
    expectRefusedFor(await refusal(backendFor(fleet.serverDir).stage()), 'usr/bin/.tabula-partial');
    expect(nextTarget()).toBe('deployments/1.0');
    expectNothingLeftBehind();
  });

  it('rsync does not carry a fifo from the server into the tree', async () => {
    publish('1.0');
    execFileSync('mkfifo', [path.join(fleet.serverDir, 'images/1.0/tree/usr/lib/.tabula-partial')]);
    await backendFor(fleet.serverDir).stage();
    expect(fs.existsSync(path.join(deployments(), '1.0/tree/usr/lib/.tabula-partial'))).toBe(false);
    expectOnlySignedEntries();
  });
});

describe('over a real sshd', () => {
  let sshd: SshServer;
  beforeAll(async () => {
    sshd = await startSshServer();
  });
  afterAll(async () => {
    await sshd?.dispose();
  });

  it('a setuid usr/bin/.tabula-partial is refused on first install and never reaches a reimage', async () => {
    const url = sshd.url(fleet.serverDir);
    publish('1.0');
    const serverTree = path.join(fleet.serverDir, 'images/1.0/tree');
    setuid(serverTree, 'usr/bin/.tabula-partial');
    expectRefusedFor(await refusal(backendFor(url, sshd.sshOptions).stage()), 'usr/bin/.tabula-partial');
    expect(nextTarget()).toBeNull();
    expect(fs.readdirSync(deployments())).toEqual([]);

    fs.rmSync(path.join(serverTree, 'usr/bin/.tabula-partial'));
    await backendFor(url, sshd.sshOptions).stage();
    fakeBootloaderBoot(fleet.root);
    setuid(serverTree, 'usr/bin/.tabula-partial');
    await backendFor(url, sshd.sshOptions).reimage();
    expect(nextTarget()).toBe('deployments/1.0');
    expect(fs.existsSync(path.join(deployments(), '1.0/tree/usr/bin/.tabula-partial'))).toBe(false);
    expectNothingLeftBehind();
    expectOnlySignedEntries();
  });
});

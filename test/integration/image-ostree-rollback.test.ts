// TUF's rollback and freeze attacks against the ostree backend: a real GPG-signed repository served
// over HTTP on 127.0.0.1, a real sysroot. The server replays an old (validly signed) summary, keeps
// serving an expired one, or moves the ref back to an older commit under a fresh summary.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TabulaError } from '../../src-main/common/errors';
import { publishOstree, writeSummary } from '../../src-main/fleet-publish';
import { createOstreeBackend } from '../../src-main/core/image/ostree';
import { createImageFleet, fakeBootloaderBoot, startCountingHttpServer, type CountingHttpServer, type ImageFleet } from '../fixtures/image-fleet';

let fleet: ImageFleet;
let http: CountingHttpServer;
const REF = 'tabula/stable/x86_64';
const repo = () => path.join(fleet.serverDir, 'repo');

beforeEach(async () => {
  fleet = createImageFleet();
  fleet.initOstreeSysroot();
  http = await startCountingHttpServer(fleet.serverDir);
});
afterEach(async () => {
  await http.close();
  fleet.dispose();
});

const backend = () => createOstreeBackend({ sysroot: fleet.root, url: `${http.url}/repo`, ref: REF, osName: 'tabula', gpgKeyring: fleet.gpgKey().keyring });
const publish = (version: string, extra: { now?: Date } = {}) =>
  publishOstree({ treeDir: fleet.makeTree(`v${version}`, version, 10, 'ostree'), outDir: fleet.serverDir, version, channel: 'stable', ref: REF, gpg: fleet.gpgKey(), ...extra });

async function rejection(p: Promise<unknown>): Promise<TabulaError> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(TabulaError);
  return err as TabulaError;
}

/** The signed summary as served now: what an attacker records to replay later. */
function recordSummary(): () => void {
  const files = ['summary', 'summary.sig'].map((n) => [path.join(repo(), n), fs.readFileSync(path.join(repo(), n))] as const);
  return () => files.forEach(([f, bytes]) => fs.writeFileSync(f, bytes));
}

async function bootedOnV1() {
  const { commit } = publish('1.0');
  await backend().stage();
  fakeBootloaderBoot(fleet.root, commit);
  return commit;
}

describe('ostree: replayed, frozen and rolled-back summaries', () => {
  it('an old signed summary is refused; the staged newer version stays', async () => {
    await bootedOnV1();
    const replayV1 = recordSummary();
    // A second later: ostree commit timestamps have one-second resolution.
    await new Promise((r) => setTimeout(r, 1100));
    publish('2.0');
    expect((await backend().stage()).version).toBe('2.0');

    replayV1();
    const err = await rejection(backend().check());
    expect(err.code).toBe('image-stale');
    expect(err.message).toMatch(/^The update server sent an older update summary \(serial \d+ < \d+\); ignored\.$/);
    expect((await rejection(backend().stage())).code).toBe('image-stale');
    expect((await backend().status()).staged?.version).toBe('2.0');
  });

  it('an expired summary says the update data is out of date', async () => {
    publish('1.0', { now: new Date(Date.now() - 8 * 86_400_000) });
    const err = await rejection(backend().check());
    expect(err.code).toBe('image-stale');
    expect(err.message).toMatch(/^Update server data is out of date since /);
    expect((await backend().status()).booted).toBeNull();
  });

  it('a fresh summary whose ref moved back to an older commit is refused (--timestamp-check)', async () => {
    const v1 = await bootedOnV1();
    await new Promise((r) => setTimeout(r, 1100));
    publish('2.0');
    await backend().stage();
    // The server moves the ref back to 1.0 and signs a new summary with a higher serial.
    execFileSync('ostree', [`--repo=${repo()}`, 'reset', REF, v1]);
    writeSummary(repo(), fleet.gpgKey());
    const err = await rejection(backend().check());
    expect(err.code).toBe('image-stale');
    expect(err.message).toMatch(/^The update server offers an older image than this machine already has \(.*chronologically older than current revision/);
    expect((await backend().status()).staged?.version).toBe('2.0');
  });
});

// The other side's rsync hangs as it starts (a dead disk, a stopped process) while its sshd still
// answers ssh's keep-alives: the storage while the sync writes its marker (.tabula-storage, the first
// sync), a fleet server while the agent or the root helper fetches a policy or a command. Each must
// end with a reason a person can read, not wait for ever (real rsync over a real sshd on 127.0.0.1).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { TabulaError } from '../../src-main/common/errors';
import { fetchFleetFile, fetchFleetFiles } from '../../src-main/core/fleet-source';
import { createRsyncTreeBackend } from '../../src-main/core/image/rsync-tree';
import { publishRsyncTree } from '../../src-main/fleet-publish';
import { runRsync } from '../../src-main/core/rsync';
import { storageEndpoint } from '../../src-main/core/sync/endpoint';
import { parseStorageUrl, sharedConnection } from '../../src-main/core/storage-url';
import { createImageFleet } from '../fixtures/image-fleet';
import { useWorldOverSsh } from '../fixtures/world-over-ssh';

// Short here so that the test does not wait minutes; the product's default is IO_TIMEOUT_SECONDS.
const IO_TIMEOUT = 3;
// Far beyond IO_TIMEOUT: a run still going then is stuck.
const ENDS_WITHIN_MS = 40_000;

/** The outcome, or a failure naming what is stuck when it has not ended within ENDS_WITHIN_MS. */
function endsOrStuck<T>(what: string, run: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout;
  const stuck = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} was still running ${ENDS_WITHIN_MS / 1000} s after the other side hung`)), ENDS_WITHIN_MS)));
  return Promise.race([run, stuck]).finally(() => clearTimeout(timer));
}

/** The pid of the ssh connection kept at `socket` (ssh's ControlMaster), or null when there is none. */
function keptConnection(socket: string): number | null {
  const r = spawnSync('ssh', ['-o', `ControlPath=${socket}`, '-O', 'check', 'storage'], { encoding: 'utf8' });
  return r.status === 0 ? Number(/pid=(\d+)/.exec(r.stderr)?.[1]) : null;
}

/** The ssh processes of the image backend's kept connections (control folder tabula-ssh-*) connected to the sshd on `port`. */
function keptFleetConnections(port: number): number[] {
  const out = spawnSync('ss', ['-tnpH', 'dst', `127.0.0.1:${port}`], { encoding: 'utf8' }).stdout;
  return [...out.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1])).filter((pid) => {
    try {
      return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('tabula-ssh-');
    } catch {
      return false; // gone meanwhile
    }
  });
}

const failureOf = (p: Promise<unknown>) =>
  p.then(
    () => new Error('it finished although the other side hung'),
    (e: unknown) => e,
  );

describe('the other side of an rsync hangs as it starts', { timeout: 120_000 }, () => {
  const { world, sshd } = useWorldOverSsh();
  const scripts: string[] = [];

  /** A remote rsync that stops itself before it says a word (given to the other side as --rsync-path). */
  function hungRsync(dir: string): string {
    const script = path.join(dir, 'hung-rsync');
    fs.writeFileSync(script, '#!/bin/sh\nkill -STOP $$\nexec rsync "$@"\n', { mode: 0o755 });
    scripts.push(script);
    return script;
  }
  /** The storage's side: the processes running one of the scripts (stopped). */
  const hung = () =>
    fs.readdirSync('/proc').filter((entry) => {
      try {
        return /^\d+$/.test(entry) && scripts.includes(fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0')[1]!);
      } catch {
        return false; // gone meanwhile
      }
    });
  // Gone after the test, so that nothing outlives it.
  afterEach(() => {
    for (const pid of hung()) process.kill(Number(pid), 'SIGKILL');
    scripts.length = 0;
  });

  it("a first sync whose storage hangs while its marker is written ends saying the storage stopped answering, and lets the hung session go", async () => {
    const w = world();
    const a = w.laptop('a'); // an empty home: the marker is the first sync's only transfer
    const url = parseStorageUrl(sshd().url(w.storageDir));
    const ep = storageEndpoint(url, sshd().sshOptions, 5, w.dir); // the connection kept as the agent keeps it
    const hangs = `--rsync-path=${hungRsync(w.dir)}`;
    const storage = { ...ep, rsyncOptions: [...ep.rsyncOptions, hangs], bulkRsyncOptions: [...ep.bulkRsyncOptions, hangs] };
    const socket = sharedConnection(url, w.dir, 30)!.socket;
    await ep.sh('true', []);
    const before = keptConnection(socket);
    expect(before).toBeGreaterThan(0);

    const err = await endsOrStuck('the first sync', failureOf(a.sync({ storage, ioTimeoutSeconds: IO_TIMEOUT })));
    // The connection that carries the hung session is closed (it would hold it for ever, and sshd's
    // MaxSessions of them refuse every later session on it): the next run opens its own.
    expect(keptConnection(socket)).toBeNull();
    expect(err).toBeInstanceOf(TabulaError);
    expect((err as TabulaError).code).toBe('storage-unreachable');
    expect((err as TabulaError).message).toMatch(/stopped answering/);
    expect((err as TabulaError).retryable).toBe(true);
    expect(fs.existsSync(path.join(w.storageDir, '.tabula-storage'))).toBe(false);

    // The storage answers again: the next sync writes the marker.
    await a.sync({ ioTimeoutSeconds: IO_TIMEOUT });
    expect(fs.existsSync(path.join(w.storageDir, '.tabula-storage'))).toBe(true);
    expect(keptConnection(socket)).not.toBe(before);
  });

  it('a fetch from a fleet server whose rsync hangs ends saying the fleet server stopped answering, one file or several', async () => {
    const w = world();
    const served = path.join(w.dir, 'fleet');
    fs.mkdirSync(served);
    fs.writeFileSync(path.join(served, 'policy.json'), '{}');
    fs.writeFileSync(path.join(served, 'policy.json.sig'), 'sig');
    // This laptop's rsync asks the server for the hung one (the server's own choice, as a hang is).
    const client = path.join(w.dir, 'rsync-to-hung-server');
    fs.writeFileSync(client, `#!/bin/sh\nexec rsync --rsync-path=${hungRsync(w.dir)} "$@"\n`, { mode: 0o755 });
    const source = { url: sshd().url(served), sshOptions: sshd().sshOptions, connectTimeoutSeconds: 5 };
    const opts = { rsyncPath: client, ioTimeoutSeconds: IO_TIMEOUT };

    for (const fetch of [() => fetchFleetFile(source, 'policy.json', opts), () => fetchFleetFiles(source, ['policy.json', 'policy.json.sig'], opts)]) {
      const err = await endsOrStuck('the fetch', failureOf(fetch()));
      expect(err).toBeInstanceOf(TabulaError);
      expect((err as TabulaError).code).toBe('image-unreachable');
      expect((err as TabulaError).message).toMatch(/^The fleet server ssh:\/\/\S+ stopped answering \(nothing came back for \d+ seconds\)/);
      expect((err as TabulaError).retryable).toBe(true);
    }
    // The same server with a live rsync: the files arrive.
    expect(String(await fetchFleetFile(source, 'policy.json', { ioTimeoutSeconds: IO_TIMEOUT }))).toBe('{}');
  });

  it("an image download whose fleet server hangs once the tree's transfer starts ends saying the fleet server stopped answering; the next pull finishes it", async () => {
    const fleet = createImageFleet();
    try {
      publishRsyncTree({ treeDir: fleet.makeTree('v1', '1.0', 5), outDir: fleet.serverDir, version: '1.0', channel: 'stable', privateKeyPem: fleet.key.privateKeyPem });
      // The channel and the manifest come; the server's rsync for the tree hangs.
      const client = path.join(fleet.dir, 'rsync-tree-hangs');
      fs.writeFileSync(client, `#!/bin/sh\ncase "$*" in *images/1.0/tree*) exec rsync --rsync-path=${hungRsync(fleet.dir)} "$@";; esac\nexec rsync "$@"\n`, { mode: 0o755 });
      const backend = (rsyncPath?: string) =>
        createRsyncTreeBackend({ root: fleet.root, source: { url: sshd().url(fleet.serverDir), sshOptions: sshd().sshOptions, connectTimeoutSeconds: 5 }, channel: 'stable', trustedKeys: [fleet.key.publicKey], rsyncPath, ioTimeoutSeconds: IO_TIMEOUT });

      const hanging = backend(client);
      const err = await endsOrStuck('the image download', failureOf(hanging.stage()).finally(() => hanging.close()));
      expect(err).toBeInstanceOf(TabulaError);
      expect((err as TabulaError).code).toBe('image-unreachable');
      expect((err as TabulaError).message).toMatch(/^Downloading image 1\.0 failed: The fleet server ssh:\/\/\S+ stopped answering \(nothing came back for \d+ seconds\)/);
      expect((err as TabulaError).retryable).toBe(true);
      // Its kept ssh connection ended with the run: it would hold the hung session, and a root ssh process, for ever.
      expect(keptFleetConnections(sshd().port)).toEqual([]);

      const answering = backend();
      expect(await answering.stage().finally(() => answering.close())).toMatchObject({ version: '1.0' });
    } finally {
      fleet.dispose();
    }
  });

  it('a run stopped while the storage hangs ends once rsync has exited: it waits on no timer (the kept connection holds the hung session)', async () => {
    const w = world();
    const ep = storageEndpoint(parseStorageUrl(sshd().url(w.storageDir)), sshd().sshOptions, 5, w.dir);
    await ep.sh('true', []); // the kept connection, as the agent has it
    fs.writeFileSync(path.join(w.dir, 'notes.txt'), 'kept');
    const run = runRsync(['-a', ...ep.rsyncOptions, `--rsync-path=${hungRsync(w.dir)}`, path.join(w.dir, 'notes.txt'), ep.rsyncRoot]);
    await expect.poll(() => hung().length, { timeout: 10_000, interval: 50 }).toBe(1);

    const sleep = globalThis.setTimeout;
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] }); // held still from here
    try {
      run.cancel();
      const ended = await Promise.race([run.done.then(() => 'ended'), new Promise((resolve) => sleep(() => resolve('still running'), 15_000))]);
      expect(ended).toBe('ended');
    } finally {
      vi.useRealTimers();
    }
    expect(hung().length).toBe(1); // the storage's side still hangs: the run did not wait for it
    await ep.close();
  });
});

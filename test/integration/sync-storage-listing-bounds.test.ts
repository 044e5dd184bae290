// The storage's listing (its `find`, run over ssh) is bounded: a storage whose find hangs (a dead
// disk, a stopped process, while its sshd still answers ssh's keep-alives) ends the sync with a reason
// a person can read instead of holding it for ever, and one that sends a listing without end is
// stopped before it fills this laptop's disk. The storage here is a real sshd whose sessions find a
// hostile `find` first on their PATH (ForceCommand); real ssh, real files.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TabulaError } from '../../src-main/common/errors';
import { storageEndpoint } from '../../src-main/core/sync/endpoint';
import { listToFile } from '../../src-main/core/sync/listing';
import { parseStorageUrl } from '../../src-main/core/storage-url';
import { createWorld, type World } from '../fixtures/laptops';
import { startSshServer, type SshServer } from '../fixtures/sshd';
import fsp from 'node:fs/promises';
import os from 'node:os';

// Short here so that the test does not wait minutes; the product's default is IO_TIMEOUT_SECONDS.
const IO_TIMEOUT = 3;
// Far beyond IO_TIMEOUT: a run still going then is stuck.
const ENDS_WITHIN_MS = 40_000;

function endsOrStuck<T>(what: string, run: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout;
  const stuck = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} was still running ${ENDS_WITHIN_MS / 1000} s after the storage's find hung`)), ENDS_WITHIN_MS)));
  return Promise.race([run, stuck]).finally(() => clearTimeout(timer));
}

const failureOf = (p: Promise<unknown>) =>
  p.then(
    () => new Error('it finished although the storage misbehaved'),
    (e: unknown) => e,
  );

describe("the storage's find misbehaves", { timeout: 120_000 }, () => {
  let dir: string;
  let sshd: SshServer;
  let w: World;
  /** What the storage's find does: 'hang', 'endless' or '' (the real one). */
  const mode = (m: string) => fs.writeFileSync(path.join(dir, 'mode'), m);
  beforeAll(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'tabula-hostile-find-'));
    fs.mkdirSync(path.join(dir, 'bin'));
    fs.writeFileSync(
      path.join(dir, 'bin/find'),
      `#!/bin/sh\ncase $(cat '${dir}/mode') in\nhang) kill -STOP $$;;\nendless) yes 'f 1 1.0 1:1.0 junk' | tr '\\n' '\\0' | head -c 200000000; exit 0;;\nesac\nexec /usr/bin/find "$@"\n`,
      { mode: 0o755 },
    );
    fs.writeFileSync(path.join(dir, 'session'), `#!/bin/sh\nPATH='${dir}/bin':$PATH exec sh -c "$SSH_ORIGINAL_COMMAND"\n`, { mode: 0o755 });
    mode('');
    sshd = await startSshServer({ extraConfig: [`ForceCommand ${path.join(dir, 'session')}`] });
  });
  afterAll(async () => {
    await sshd?.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  afterEach(() => {
    // The stopped finds go with the test.
    for (const pid of fs.readdirSync('/proc')) {
      try {
        if (/^\d+$/.test(pid) && fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(`${dir}/bin/find`)) process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    mode('');
    w?.dispose();
  });

  it('a find that hangs ends the sync saying the storage stopped answering; the next sync, with the storage well again, goes through', async () => {
    w = createWorld(sshd);
    const a = w.laptop('a');
    a.write('notes.txt', 'kept');
    mode('hang');
    const err = await endsOrStuck('the sync', failureOf(a.sync({ ioTimeoutSeconds: IO_TIMEOUT })));
    expect(err).toBeInstanceOf(TabulaError);
    expect((err as TabulaError).code).toBe('storage-unreachable');
    expect((err as TabulaError).message).toMatch(/stopped answering \(nothing came back for 3 seconds\)/);
    expect((err as TabulaError).retryable).toBe(true);

    mode('');
    expect((await a.sync({ ioTimeoutSeconds: IO_TIMEOUT })).counts.pushed).toBe(1);
    expect(w.storageFiles()).toEqual({ 'notes.txt': 'kept' });
  });

  it('a listing without end is stopped at its cap, named, and leaves no file behind', async () => {
    w = createWorld(sshd);
    const ep = storageEndpoint(parseStorageUrl(sshd.url(w.storageDir)), sshd.sshOptions, 5, w.dir);
    const file = path.join(w.dir, 'listing');
    mode('endless');
    const err = await endsOrStuck('the listing', failureOf(listToFile(ep, [], file, { silentSeconds: 30, maxBytes: 1024 * 1024 })));
    expect(err).toBeInstanceOf(TabulaError);
    expect((err as TabulaError).code).toBe('storage-invalid');
    expect((err as TabulaError).message).toMatch(/^The storage ssh:\/\/\S+ sent a list of its files longer than 1048576 bytes, so Tabula stopped listing it/);
    expect(fs.readdirSync(w.dir).filter((f) => f.startsWith('listing'))).toEqual([]);
    await ep.close();
  });
});

// Bringing back an older version from a storage that is hostile or hangs (real rsync over a real sshd).
// A restore runs in the sync's one queue: one that never ends stops every later backup too.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { TabulaError } from '../../src-main/common/errors';
import { storageEndpoint } from '../../src-main/core/sync/endpoint';
import { listVersions, pickVersion, restoreVersion } from '../../src-main/core/sync/versions';
import { parseStorageUrl } from '../../src-main/core/storage-url';
import type { Laptop, World } from '../fixtures/laptops';
import { useWorldOverSsh } from '../fixtures/world-over-ssh';

const REAL_RSYNC = ['/usr/bin/rsync', '/bin/rsync'].find((p) => fs.existsSync(p))!;
const IO_TIMEOUT = 4;
const ENDS_WITHIN_MS = 45_000;

describe('restore from a hostile or hung storage', { timeout: 120_000 }, () => {
  const { world, sshd } = useWorldOverSsh();
  let w: World;
  let a: Laptop;
  beforeEach(async () => {
    w = world();
    a = w.laptop('a');
    a.write('bin/tool', 'first');
    await a.sync();
    a.write('bin/tool', 'second!');
    await a.sync(); // the storage keeps "first" as a version
  });

  const storage = () => storageEndpoint(parseStorageUrl(sshd().url(w.storageDir)), sshd().sshOptions, 5);
  const restore = async (ioTimeoutSeconds?: number) => {
    const s = storage();
    const version = pickVersion(await listVersions(s, 'bin/tool'))!;
    expect(version?.stamp).toBeTruthy();
    return restoreVersion({ storage: s, home: a.home, rel: 'bin/tool', version, localBackupDir: path.join(a.stateDir, 'versions', 'restore-test'), ioTimeoutSeconds });
  };

  it('a version the storage marked set-user-ID arrives without it: nobody else runs it with this user\'s rights', async () => {
    const [stamp] = fs.readdirSync(path.join(w.storageDir, '.tabula/versions'));
    const planted = path.join(w.storageDir, '.tabula/versions', stamp!, 'bin/tool');
    fs.chmodSync(planted, 0o6755);
    expect(fs.statSync(planted).mode & 0o6000).toBe(0o6000); // as the storage shows it

    await restore();
    const back = path.join(a.home, 'bin/tool');
    expect(fs.readFileSync(back, 'utf8')).toBe('first');
    expect((fs.statSync(back).mode & 0o7777).toString(8)).toBe('755');
  });

  it("the storage's rsync never answers: the restore ends saying so, the home's copy stays, and a later restore works", async () => {
    // rsync on PATH whose storage side stops itself before it starts (as a hung disk would leave it).
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-hung-rsync-'));
    fs.writeFileSync(path.join(dir, 'remote-rsync'), `#!/bin/sh\nkill -STOP $$\nexec ${REAL_RSYNC} "$@"\n`, { mode: 0o755 });
    fs.writeFileSync(path.join(dir, 'rsync'), `#!/bin/sh\nexec ${REAL_RSYNC} --rsync-path=${path.join(dir, 'remote-rsync')} "$@"\n`, { mode: 0o755 });
    const before = process.env.PATH;
    process.env.PATH = `${dir}:${before}`;
    let err: unknown;
    try {
      let timer: NodeJS.Timeout;
      const stuck = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`the restore was still running after ${ENDS_WITHIN_MS / 1000} s`)), ENDS_WITHIN_MS)));
      err = await Promise.race([restore(IO_TIMEOUT), stuck]).then(() => new Error('the restore finished'), (e: unknown) => e).finally(() => clearTimeout(timer));
    } finally {
      process.env.PATH = before;
      // The stopped storage side, found by its command line, goes (a stuck restore ends with it).
      for (const pid of fs.readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
        try {
          if (fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir)) process.kill(Number(pid), 'SIGKILL');
        } catch {
          // gone
        }
      }
      fs.rmSync(dir, { recursive: true, force: true });
    }
    expect(err).toBeInstanceOf(TabulaError);
    expect((err as TabulaError).code).toBe('storage-unreachable');
    expect((err as TabulaError).message).toMatch(/stopped answering \(nothing came back for \d+ seconds\), so the restore stopped\. Any file it had already replaced in your home is kept aside/);
    expect(a.read('bin/tool')).toBe('second!');

    await restore(IO_TIMEOUT);
    expect(a.read('bin/tool')).toBe('first');
  });
});

// A storage that writes error output without end (a broken disk logging every sector, or a hostile
// one): ssh hands whatever the storage's side writes to stderr on to rsync's stderr, which Tabula
// keeps in a file while the run lasts. That file must not fill this laptop's disk; the run still ends
// with the first 256 KiB of it, where the storage said what went wrong first (real rsync over a
// real sshd on 127.0.0.1).
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runRsync } from '../../src-main/core/rsync';
import { storageEndpoint } from '../../src-main/core/sync/endpoint';
import { parseStorageUrl } from '../../src-main/core/storage-url';
import { useWorldOverSsh } from '../fixtures/world-over-ssh';

const MiB = 1024 * 1024;
/** What the storage writes to stderr in all: far more than may stay on the laptop's disk. */
const WRITTEN = 400 * MiB;
/** The most the stderr file may take on disk at any time (256 KiB kept, plus what arrives between two cuts). */
const MOST_ON_DISK = 100 * MiB;

describe("a storage whose side of rsync writes error output without end", { timeout: 120_000 }, () => {
  const { world, sshd } = useWorldOverSsh();
  const tmpBefore = process.env.TMPDIR;
  afterEach(() => {
    if (tmpBefore === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = tmpBefore;
  });

  for (const where of ['the temporary folder', 'a file beside the output'] as const) {
    it(`keeps the first 256 KiB of it, and never lets the file in ${where} grow toward filling the disk`, async () => {
      const w = world();
      // The run's files go to a folder of this test's own, so that the watch below finds only them.
      const scratch = path.join(w.dir, 'scratch');
      fs.mkdirSync(scratch);
      process.env.TMPDIR = scratch;
      const spew = path.join(w.dir, 'spewing-rsync');
      fs.writeFileSync(spew, `#!/bin/sh\necho 'storage: first complaint: /dev/sdb I/O error' >&2\nyes 'storage: disk error on /dev/sdb, sector 123456' | head -c ${WRITTEN} >&2\nexit 1\n`, { mode: 0o755 });
      fs.mkdirSync(path.join(w.dir, 'from'));
      const ep = storageEndpoint(parseStorageUrl(sshd().url(w.storageDir)), sshd().sshOptions, 5);

      // The stderr file is open, removed, in the run's processes: its size is read through them.
      let most = 0;
      const watch = setInterval(() => {
        for (const pid of fs.readdirSync('/proc')) {
          if (!/^\d+$/.test(pid)) continue;
          try {
            if (!fs.readlinkSync(`/proc/${pid}/fd/2`).startsWith(scratch)) continue;
            most = Math.max(most, fs.statSync(`/proc/${pid}/fd/2`).blocks * 512);
          } catch {
            // gone meanwhile, or not ours to read
          }
        }
      }, 20);
      try {
        const outputFile = where === 'a file beside the output' ? path.join(scratch, 'output') : undefined;
        const r = await runRsync(['-a', ...ep.rsyncOptions, `--rsync-path=${spew}`, path.join(w.dir, 'from') + '/', ep.rsyncRoot], {}, { outputFile }).done;
        expect(r.code).not.toBe(0);
        expect(r.stderr.startsWith('storage: first complaint: /dev/sdb I/O error\n')).toBe(true);
        expect(Buffer.byteLength(r.stderr)).toBeGreaterThan(250 * 1024);
        expect(Buffer.byteLength(r.stderr)).toBeLessThanOrEqual(256 * 1024);
      } finally {
        clearInterval(watch);
      }
      expect(most).toBeGreaterThan(0); // the watch did see the file
      expect(most).toBeLessThan(MOST_ON_DISK);
      expect(fs.readdirSync(scratch)).toEqual([]); // nothing left behind
    });
  }
});

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseOsRelease } from '../../src-main/core/os-release';
import { parseableOutput, parseRsyncLine, runRsync, type RsyncItem } from '../../src-main/core/rsync';
import { describeRsyncFailure } from '../../src-main/core/rsync-errors';
import type { RsyncResult } from '../../src-main/core/rsync';
import { parseStorageUrl, rsyncTarget, sshCommand } from '../../src-main/core/storage-url';

describe('os-release', () => {
  it('reads quoted and unquoted values, ignoring comments', () => {
    const f = parseOsRelease('# comment\nNAME="Tabula \\"Work\\" OS"\nIMAGE_VERSION=2026.11.3\nID=\'debian\'\n');
    expect(f).toEqual({ NAME: 'Tabula "Work" OS', IMAGE_VERSION: '2026.11.3', ID: 'debian' });
  });
});

describe('storage URL', () => {
  it('understands ssh URLs with and without user and port', () => {
    expect(parseStorageUrl('ssh://bob@nas.example:2222/srv/home/bob')).toMatchObject({ kind: 'ssh', user: 'bob', host: 'nas.example', port: 2222, path: '/srv/home/bob' });
    expect(rsyncTarget(parseStorageUrl('ssh://nas/srv/x'))).toBe('nas:/srv/x/');
    expect(rsyncTarget(parseStorageUrl('file:///mnt/nas/bob'))).toBe('/mnt/nas/bob/');
  });

  it('refuses relative paths, option-like hosts and passwords with a clear message', () => {
    expect(() => parseStorageUrl('backups')).toThrow(/absolute path/);
    expect(() => parseStorageUrl('ssh://-oProxyCommand=x/srv')).toThrow(/host name/);
    expect(() => parseStorageUrl('ssh://bob:secret@nas/srv')).toThrow(/passwords/);
    expect(() => parseStorageUrl('ssh://nas/')).toThrow(/no folder/);
  });

  it('quotes ssh options for rsync -e and refuses embedded quotes', () => {
    const s = parseStorageUrl('ssh://bob@nas:2222/srv');
    // (and AES-GCM first where the processor has AES instructions: ssh-options.test.ts)
    expect(sshCommand(s, ['-i', '/keys/my key'], 5)).toMatch(/^ssh -p 2222 -o BatchMode=yes -o ConnectTimeout=5 -o ServerAliveInterval=15 -i '\/keys\/my key'( -o 'Ciphers=\^aes128-gcm@openssh\.com')?$/);
    expect(() => sshCommand(s, ["-oProxyCommand='x'"], 5)).toThrow(/quote/);
  });
});

describe('rsync output', () => {
  it('parses itemized names (with | in them) and progress2 lines', () => {
    expect(parseRsyncLine('>f+++++++++|1234|1300|docs/a|b.txt')).toEqual({ item: { change: '>f+++++++++', name: 'docs/a|b.txt', size: 1234 } });
    expect(parseRsyncLine('*deleting  |0|0|caf\\#303\\#251 \\#012x')).toEqual({ item: { change: '*deleting', name: 'café \nx', size: 0 } });
    expect(parseRsyncLine('      52428800  45%  100.00MB/s    0:00:00 (xfr#3, to-chk=7/12)')).toEqual({
      progress: { bytesDone: 52428800, percent: 45, etaSeconds: 0, filesDone: 5, filesTotal: 12 },
    });
    expect(parseRsyncLine('    1048576   3%   10.00MB/s    1:02:03')).toMatchObject({ progress: { percent: 3, etaSeconds: 3723, filesTotal: null } });
    expect(parseRsyncLine('sending incremental file list')).toBeNull();
    expect(parseRsyncLine('>f+++++++++|12x|13|a')).toBeNull();
    expect(parseRsyncLine('>f|1|1|a')).toBeNull(); // an itemize string is longer
  });

  it('read from a file instead of a pipe: every file a real rsync copies is told once, by its exact name, and the file is gone', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-rsync-out-'));
    try {
      const src = path.join(dir, 'src');
      const names = ['a|b.txt', 'new\nline', 'caf\u00e9', ' lead', ...Array.from({ length: 3000 }, (_, i) => `d${i % 7}/f${i}`)];
      for (const n of names) {
        fs.mkdirSync(path.dirname(path.join(src, n)), { recursive: true });
        fs.writeFileSync(path.join(src, n), n);
      }
      const items: RsyncItem[] = [];
      const percents: number[] = [];
      const out = path.join(dir, 'output');
      const run = runRsync([...parseableOutput, '-a', `${src}/`, path.join(dir, 'dst') + '/'], { item: (i) => items.push(i), progress: (p) => percents.push(p.percent) }, { outputFile: out });
      const r = await run.done;
      expect(r.code).toBe(0);
      const files = items.filter((i) => i.change.startsWith('>f')).map((i) => i.name);
      expect(files.sort()).toEqual([...names].sort());
      expect(r.filesTransferred).toBe(names.length);
      expect(percents.at(-1)).toBe(100);
      expect(fs.existsSync(out)).toBe(false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('rsync failures in words', () => {
  const result = (code: number, stderr: string): RsyncResult => ({ code, signal: null, stderr, filesTransferred: 0, bytesTransferred: 0, spawnError: null });
  const ctx = { home: '/home/ann', storage: 'ssh://nas/ann', cancelled: false };

  it('lists unreadable files relative to the home instead of "exited 23"', () => {
    const stderr = ['x', 'y', 'z', 'w']
      .map((n) => `rsync: [sender] send_files failed to open "/home/ann/${n}": Permission denied (13)`)
      .join('\n') + '\nrsync error: some files/attrs were not transferred (see previous errors) (code 23) at main.c(1338)';
    const err = describeRsyncFailure(result(23, stderr), ctx);
    expect(err.code).toBe('files-unreadable');
    expect(err.message).toBe('4 files could not be backed up (permission denied for ~/x, ~/y, ~/z and 1 more). Everything else was copied.');
    expect(err.details).toEqual(['~/x', '~/y', '~/z', '~/w']);
  });

  it('recognises an unreachable storage even when rsync says nothing', () => {
    expect(describeRsyncFailure(result(255, ''), ctx)).toMatchObject({ code: 'storage-unreachable', retryable: true });
    expect(describeRsyncFailure(result(255, 'ssh: connect to host nas port 22: Connection refused\n'), ctx).message).toBe(
      'The storage ssh://nas/ann cannot be reached right now (connection refused).',
    );
  });

  it('says the storage stopped answering, whether rsync timed out or Tabula stopped a silent run, and a cancel stays a cancel', () => {
    const timedOut = describeRsyncFailure(result(30, '[sender] io timeout after 121 seconds -- exiting\nrsync error: timeout in data send/receive (code 30) at io.c(248)'), ctx);
    expect(timedOut).toMatchObject({ code: 'storage-unreachable', retryable: true });
    expect(timedOut.message).toBe('The storage ssh://nas/ann stopped answering (nothing came back for 121 seconds), so the backup stopped there. Files already copied are kept; the next backup continues from there.');
    const stalled: RsyncResult = { ...result(0, ''), code: null, signal: 'SIGTERM', stalledSeconds: 120 };
    expect(describeRsyncFailure(stalled, ctx).message).toMatch(/^The storage ssh:\/\/nas\/ann stopped answering \(nothing came back for 120 seconds\)/);
    expect(describeRsyncFailure(stalled, { ...ctx, cancelled: true }).code).toBe('cancelled');
  });

  it('a restore cut part-way says it was the restore, and that what it replaced is kept', () => {
    const killed: RsyncResult = { ...result(0, ''), code: null, signal: 'SIGTERM' };
    const cut = describeRsyncFailure(killed, { ...ctx, restore: true });
    expect(cut.code).toBe('cancelled');
    expect(cut.message).toMatch(/^The restore was stopped before it finished\. Any file it had already replaced in your home is kept aside/);
    expect(cut.message).not.toMatch(/backup was stopped/);
    const stalled: RsyncResult = { ...killed, stalledSeconds: 120 };
    expect(describeRsyncFailure(stalled, { ...ctx, restore: true }).message).toMatch(/stopped answering \(nothing came back for 120 seconds\), so the restore stopped\. Any file it had already replaced/);
  });

  it('names a full storage and a refused login', () => {
    expect(describeRsyncFailure(result(11, 'write failed: No space left on device (28)'), ctx).code).toBe('storage-full');
    expect(describeRsyncFailure(result(255, 'bob@nas: Permission denied (publickey).'), ctx).code).toBe('storage-auth-failed');
  });
});

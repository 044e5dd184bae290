// The connection cut in the middle of an rsync run, between the moment a file's line is printed and the
// moment the receiving side renames it into place (real rsync over a real sshd; strace makes the
// receiving rsync die at its third rename, as a storage or a laptop losing power would). rsync prints a
// file's line on the sending side once its data is sent, and on the receiving side before the rename:
// a printed name is not yet a file in place. The next normal run must lose nothing: no file deleted on
// either side for having been "synced" when it never arrived.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import type { World } from '../fixtures/laptops';
import { useWorldOverSsh } from '../fixtures/world-over-ssh';

const REAL_RSYNC = ['/usr/bin/rsync', '/bin/rsync'].find((p) => fs.existsSync(p))!;
const none = { pulled: 0, pushed: 0, deletedLocal: 0, deletedRemote: 0 };

/**
 * rsync on PATH, both ends of it (--rsync-path for the storage's side) run under strace, which at the
 * third rename (a temporary file becoming the file, or a replaced one moving to the versions area)
 * kills the rsync process ('die': whichever side receives dies there and the other sees the
 * connection cut) or fails that one rename ('fail': rsync goes on, and ends with code 23).
 * `storageDiesAfter`: the storage's whole rsync is killed that many seconds after it started (the
 * process that renames is not always the last one: the other would wait on the connection for ever).
 */
function dyingRsync(how: 'die' | 'fail' = 'die', storageDiesAfter?: number) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-dying-rsync-'));
  const trace = `strace -f -qq -o /dev/null -e trace=rename,renameat,renameat2 -e inject=rename,renameat,renameat2:${how === 'die' ? 'signal=SIGKILL' : 'error=EIO'}:when=3`;
  // timeout(1) signals its whole process group: strace and every rsync it traces.
  const remote = storageDiesAfter ? `timeout -s KILL ${storageDiesAfter} ${trace}` : trace;
  fs.writeFileSync(path.join(dir, 'remote-rsync'), `#!/bin/sh\nexec ${remote} ${REAL_RSYNC} "$@"\n`, { mode: 0o755 });
  fs.writeFileSync(path.join(dir, 'rsync'), `#!/bin/sh\nexec ${trace} ${REAL_RSYNC} --rsync-path=${path.join(dir, 'remote-rsync')} "$@"\n`, { mode: 0o755 });
  const before = process.env.PATH;
  process.env.PATH = `${dir}:${before}`;
  return () => {
    process.env.PATH = before;
    fs.rmSync(dir, { recursive: true, force: true });
  };
}

const ten = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`new/file${i}.txt`, `new file ${i}`]));
// Enough files beside them that deleting the lost ones stays under the delete limit (maxDeletePercent).
const kept = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`kept/file${i}.txt`, `kept ${i}`]));

describe('a connection cut after rsync printed a file but before it was in place', { timeout: 120_000 }, () => {
  const { world } = useWorldOverSsh();
  let w: World;
  beforeEach(() => {
    w = world();
  });

  for (const how of ['die', 'fail'] as const) {
    it(`push (the storage's rsync ${how === 'die' ? 'dies' : 'fails one rename'}): the files that never reached the storage stay at home and go up with the next run`, async () => {
      const a = w.laptop('a');
      for (const [p, c] of Object.entries(kept)) a.write(p, c);
      await a.sync();
      for (const [p, c] of Object.entries(ten)) a.write(p, c);

      const reported: string[] = [];
      const restore = dyingRsync(how);
      try {
        await expect(a.sync({ onProgress: (p) => void (p.phase === 'pushing' && p.currentFile && reported.push(p.currentFile)) })).rejects.toThrow();
      } finally {
        restore();
      }
      // The case at hand: rsync said it sent files that the storage does not have.
      const onStorage = w.storageFiles();
      expect(reported.filter((p) => ten[p] !== undefined && onStorage[p] === undefined).length).toBeGreaterThan(0);

      const next = await a.sync();
      expect(next.counts.deletedLocal).toBe(0);
      expect(a.files()).toEqual({ ...kept, ...ten });
      expect(w.storageFiles()).toEqual({ ...kept, ...ten });
      expect((await a.sync()).counts).toEqual(none);
    });
  }

  it('pull: the files that never reached the home stay on the storage and come down with the next run', async () => {
    const a = w.laptop('a');
    const b = w.laptop('b');
    for (const [p, c] of Object.entries(kept)) a.write(p, c);
    await a.sync();
    await b.sync();
    for (const [p, c] of Object.entries(ten)) a.write(p, c);
    await a.sync();

    const reported: string[] = [];
    const restore = dyingRsync();
    try {
      await expect(b.sync({ onProgress: (p) => void (p.phase === 'pulling' && p.currentFile && reported.push(p.currentFile)) })).rejects.toThrow();
    } finally {
      restore();
    }
    const atHome = b.files();
    expect(reported.filter((p) => ten[p] !== undefined && atHome[p] === undefined).length).toBeGreaterThan(0);

    const next = await b.sync();
    expect(next.counts.deletedRemote).toBe(0);
    expect(w.storageFiles()).toEqual({ ...kept, ...ten });
    expect(b.files()).toEqual({ ...kept, ...ten });
    expect((await b.sync()).counts).toEqual(none);
    expect((await a.sync()).counts).toEqual(none);
    expect(a.files()).toEqual({ ...kept, ...ten });
  });

  it('deletions: what the cut run did not delete is deleted by the next, and nothing deleted comes back', async () => {
    const a = w.laptop('a');
    for (const [p, c] of Object.entries(kept)) a.write(p, c);
    for (const [p, c] of Object.entries(ten)) a.write(p, c);
    await a.sync();
    for (let i = 0; i < 4; i++) a.rm(`new/file${i}.txt`);
    const rest = Object.fromEntries(Object.entries(ten).slice(4));

    // The storage's rsync that deletes (moves into the versions area) dies at its third.
    const restore = dyingRsync('die', 10);
    try {
      await expect(a.sync()).rejects.toThrow();
    } finally {
      restore();
    }
    expect(Object.keys(w.storageFiles()).length).toBeGreaterThan(Object.keys({ ...kept, ...rest }).length); // not all went

    const next = await a.sync();
    expect(next.counts.pulled).toBe(0);
    expect(a.files()).toEqual({ ...kept, ...rest });
    expect(w.storageFiles()).toEqual({ ...kept, ...rest });
    expect((await a.sync()).counts).toEqual(none);
  });
});

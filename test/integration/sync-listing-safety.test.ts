// What the listings must get right for a person who is not root, under a UTF-8 locale, and what may
// arrive from a storage that someone else can write: unreadable items are skipped by name while the
// rest syncs, setuid/setgid bits never arrive, and Tabula's own names in a home are reported, not hidden.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createWorld, type World } from '../fixtures/laptops';

const nobody = { uid: 65534, gid: 65534 };
const utf8 = { PATH: process.env.PATH, LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8' };

let w: World;
beforeEach(() => {
  w = createWorld();
});
afterEach(() => {
  // The unreadable parts must be readable again to be removed.
  fs.rmSync(w.dir, { recursive: true, force: true });
});

function chownTree(p: string) {
  fs.chownSync(p, nobody.uid, nobody.gid);
  if (fs.lstatSync(p).isDirectory()) for (const e of fs.readdirSync(p)) chownTree(path.join(p, e));
}

describe('a home synced by a person who is not root, under a UTF-8 locale', () => {
  it.skipIf(process.getuid?.() !== 0)('an unreadable folder and an unreadable file are skipped by name; everything else syncs, nothing is deleted', async () => {
    const a = w.laptop('a');
    a.write('ok.txt', 'fine');
    a.write('Private/secret.txt', 'secret');
    a.write('Notes/locked.txt', 'locked');
    a.write('Notes/open.txt', 'open');
    fs.chmodSync(w.dir, 0o755);
    chownTree(a.home);
    chownTree(w.storageDir);
    const first = await a.syncAs(nobody, utf8);
    expect(first.failed).toBeNull();
    expect(w.storageFiles()).toEqual({ 'ok.txt': 'fine', 'Private/secret.txt': 'secret', 'Notes/locked.txt': 'locked', 'Notes/open.txt': 'open' });

    // Now the person (or a program) makes a folder and a file unreadable, and edits something else.
    fs.chmodSync(path.join(a.home, 'Private'), 0o000);
    fs.chmodSync(path.join(a.home, 'Notes/locked.txt'), 0o000);
    a.write('ok.txt', 'fine, edited');
    fs.chownSync(path.join(a.home, 'ok.txt'), nobody.uid, nobody.gid);
    const second = await a.syncAs(nobody, utf8);
    expect(second.failed).toBeNull();
    expect(second.summary!.skipped).toEqual(expect.arrayContaining([{ path: 'Private', why: 'permission denied' }, { path: 'Notes/locked.txt', why: 'permission denied' }]));
    expect(second.summary!.deletedRemote).toEqual([]);
    // The rest went through, and what could not be read is still on the storage as it was.
    expect(w.storageFiles()).toEqual({ 'ok.txt': 'fine, edited', 'Private/secret.txt': 'secret', 'Notes/locked.txt': 'locked', 'Notes/open.txt': 'open' });
    // Said again on a run that finds nothing else to do.
    const third = await a.syncAs(nobody, utf8);
    expect(third.summary!.skipped.map((s) => s.path).sort()).toEqual(['Notes/locked.txt', 'Private']);
  });
});

describe('what arrives from the storage', () => {
  it('a setuid or setgid file on the storage arrives without those bits', async () => {
    const a = w.laptop('a');
    a.write('keep.txt', 'k');
    await a.sync();
    for (const [name, mode] of [['tool', 0o4755], ['grouptool', 0o2755], ['both', 0o6711]] as const) {
      const f = path.join(w.storageDir, name);
      fs.writeFileSync(f, '#!/bin/sh\necho hi\n');
      fs.chmodSync(f, mode);
      expect(fs.statSync(f).mode & 0o7777).toBe(mode);
    }
    await a.sync({ verify: true });
    expect((fs.statSync(path.join(a.home, 'tool')).mode & 0o7777).toString(8)).toBe('755');
    expect((fs.statSync(path.join(a.home, 'grouptool')).mode & 0o7777).toString(8)).toBe('755');
    expect((fs.statSync(path.join(a.home, 'both')).mode & 0o7777).toString(8)).toBe('711');
  });

  it("Tabula's own names in a home are reported as skipped, not silently left out", async () => {
    const a = w.laptop('a');
    a.write('.tabula-storage', 'not a marker, a file of mine');
    a.write('.tabula/notes.txt', 'my own folder of that name');
    a.write('doc.txt', 'd');
    const s = await a.sync();
    expect(s.skipped).toEqual(
      expect.arrayContaining([
        { path: '.tabula', why: "the name is Tabula's own on the storage" },
        { path: '.tabula-storage', why: "the name is Tabula's own on the storage" },
      ]),
    );
    expect(w.storageFiles()).toEqual({ 'doc.txt': 'd' });
  });
});

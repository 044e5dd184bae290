// Issue 11's five reproductions, each as a person met it: a deleted folder with contents, a folder
// turned into a file (and back) at any depth, a conflict copy overwritten by a second conflict in the
// same second, same size and time with different content, and the delete limit in a small home.
// Real rsync, against a mounted folder and (for the folder cases) over a real sshd.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { TabulaError } from '../../src-main/common/errors';
import { conflictStore } from '../../src-main/core/sync/conflict-store';
import { createWorld, readTree, type World } from '../fixtures/laptops';
import { startSshServer, type SshServer } from '../fixtures/sshd';

const t0 = new Date('2026-03-01T09:00:00Z');
const at = (s: number) => new Date(t0.getTime() + s * 1000);
const versionsOf = (w: World) => readTree(path.join(w.storageDir, '.tabula/versions'));
const localVersionsOf = (dir: string) => readTree(path.join(dir, 'versions'));

describe.each(['folder', 'ssh'])('folders and types with a %s storage', { timeout: 120_000 }, (kind) => {
  let sshd: SshServer | undefined;
  let w: World;
  beforeAll(async () => {
    if (kind === 'ssh') sshd = await startSshServer();
  });
  afterAll(() => sshd?.dispose());
  beforeEach(() => {
    w = createWorld(sshd);
  });
  afterEach(() => w.dispose());

  it('1. a folder deleted with its contents goes in one clean run, pushed and pulled, kept in versions', async () => {
    const a = w.laptop('a');
    const b = w.laptop('b');
    a.write('x/y/z', 'z');
    a.write('x/y/w/deep.txt', 'deep');
    a.write('x/top.txt', 'top');
    for (let i = 0; i < 6; i++) a.write(`keep${i}.txt`, `k${i}`);
    await a.sync();
    await b.sync();
    a.rm('x');
    const pushed = await a.sync(); // no second run needed, no error
    expect(pushed.deletedRemote.sort()).toEqual(['x/top.txt', 'x/y/w/deep.txt', 'x/y/z']);
    expect(fs.existsSync(path.join(w.storageDir, 'x'))).toBe(false);
    expect(Object.values(versionsOf(w)).sort()).toEqual(['deep', 'top', 'z']);
    const pulled = await b.sync();
    expect(pulled.deletedLocal.sort()).toEqual(['x/top.txt', 'x/y/w/deep.txt', 'x/y/z']);
    expect(fs.existsSync(path.join(b.home, 'x'))).toBe(false);
    expect(Object.values(localVersionsOf(b.stateDir)).sort()).toEqual(['deep', 'top', 'z']);
    expect(b.files()).toEqual(a.files());
  });

  it('2. a folder replaced by a file on the storage syncs in one run, and other changes still go up', async () => {
    const a = w.laptop('a');
    a.write('p/x', 'x');
    for (let i = 0; i < 3; i++) a.write(`keep${i}.txt`, `k${i}`);
    await a.sync();
    fs.rmSync(path.join(w.storageDir, 'p'), { recursive: true });
    fs.writeFileSync(path.join(w.storageDir, 'p'), 'f');
    a.write('report.txt', 'new');
    await a.sync({ verify: true }); // changed by hand, not by a laptop: list the storage in full
    expect(a.read('p')).toBe('f');
    expect(fs.readFileSync(path.join(w.storageDir, 'report.txt'), 'utf8')).toBe('new');
    expect(Object.values(localVersionsOf(a.stateDir))).toEqual(['x']); // the replaced folder's file is kept
    expect(w.storageFiles()).toEqual(a.files());
    expect((await a.sync()).pulled).toEqual([]); // settled: the next run has nothing to do
  });

  it('2. type changes both ways at depth: folder → file → folder, from either laptop', async () => {
    const a = w.laptop('a');
    const b = w.laptop('b');
    a.write('d1/d2/d3/f.txt', 'f');
    a.write('d1/d2/g.txt', 'g');
    for (let i = 0; i < 4; i++) a.write(`keep${i}.txt`, `k${i}`);
    await a.sync();
    await b.sync();
    // a: the folder d1/d2 becomes a file.
    a.rm('d1/d2');
    a.write('d1/d2', 'now a file');
    await a.sync();
    await b.sync();
    expect(b.read('d1/d2')).toBe('now a file');
    expect(Object.values(versionsOf(w)).sort()).toEqual(['f', 'g']);
    // b: the file becomes a folder again, deeper.
    b.rm('d1/d2');
    b.write('d1/d2/e/h.txt', 'h');
    await b.sync();
    await a.sync();
    expect(a.files()).toEqual(b.files());
    expect(a.read('d1/d2/e/h.txt')).toBe('h');
    expect(Object.values(versionsOf(w))).toContain('now a file');
    expect(w.storageFiles()).toEqual(a.files());
  });

  it('2. a folder turned into a file on one side while the other side edits inside it: both kept', async () => {
    const a = w.laptop('a');
    const b = w.laptop('b');
    a.write('p/x.txt', 'x', at(0));
    a.write('keep.txt', 'k');
    await a.sync();
    await b.sync();
    a.rm('p');
    a.write('p', 'file on a', at(10));
    b.write('p/x.txt', 'x edited on b', at(20));
    await b.sync();
    await a.sync();
    await b.sync();
    expect(a.read('p/x.txt')).toBe('x edited on b');
    const copy = Object.keys(a.files()).find((f) => f.startsWith('p.conflict-'))!;
    expect(copy).toMatch(/^p\.conflict-\d{8}-\d{6}-a$/);
    expect(a.read(copy)).toBe('file on a');
    expect(b.files()).toEqual(a.files());
  });
});

describe('conflicts and content', () => {
  let w: World;
  beforeEach(() => {
    w = createWorld();
  });
  afterEach(() => w.dispose());

  it('3. a second conflict in the same second never overwrites an edited conflict copy; both are listed', async () => {
    const a = w.laptop('a');
    const b = w.laptop('b');
    a.write('r.txt', 'original', at(0));
    await a.sync();
    await b.sync();
    // First conflict: b's edit is older, becomes the copy.
    b.write('r.txt', 'b first', at(5));
    a.write('r.txt', 'a first!', at(9));
    await b.sync();
    await a.sync();
    await b.sync();
    const [first] = conflictStore(a.stateDir).load().value;
    expect(a.read(first!.conflictPath)).toBe('b first');
    // The person edits the conflict copy on a; meanwhile a second conflict on r.txt, with b's version
    // again from the very same second.
    a.write(first!.conflictPath, 'b first, then edited on a', at(30));
    b.write('r.txt', 'b second', at(5));
    a.write('r.txt', 'a second!!', at(40));
    await b.sync();
    await a.sync();
    await b.sync();
    const everywhere = [a.files(), b.files(), w.storageFiles()];
    for (const files of everywhere) {
      const contents = Object.values(files);
      expect(contents).toContain('b first, then edited on a');
      expect(contents).toContain('b second');
      expect(contents).toContain('a second!!');
    }
    const listed = conflictStore(a.stateDir).load().value;
    expect(listed.map((c) => c.path)).toEqual(['r.txt', 'r.txt']);
    expect(new Set(listed.map((c) => c.conflictPath)).size).toBe(2);
    expect(a.files()).toEqual(b.files());
  });

  it('4. same size, same time, different content on both sides is a conflict, not "in sync"', async () => {
    const a = w.laptop('a');
    const b = w.laptop('b');
    a.write('s.txt', 'AAAA', at(0));
    await a.sync();
    await b.sync();
    a.write('s.txt', 'BBBB', at(60));
    b.write('s.txt', 'CCCC', at(60));
    await a.sync();
    const s = await b.sync();
    expect(s.conflicts).toHaveLength(1);
    await a.sync();
    for (const files of [a.files(), b.files(), w.storageFiles()]) expect(Object.values(files).sort()).toEqual(['BBBB', 'CCCC']);
  });

  it('"keep theirs" on a conflict where the storage was newer leaves exactly one file, everywhere', async () => {
    const a = w.laptop('a');
    const b = w.laptop('b');
    a.write('r.txt', 'base');
    await a.sync();
    await b.sync();
    // Times as the kernel sets them, to the nanosecond (not rounded to a millisecond by a test).
    a.write('r.txt', 'older edit on a');
    await new Promise((r) => setTimeout(r, 50));
    b.write('r.txt', 'newer edit on b');
    await b.sync();
    const s = await a.sync();
    expect(s.conflicts).toEqual([expect.objectContaining({ path: 'r.txt', kept: 'remote' })]);
    // What "Keep theirs" does in the home (service.resolveConflict): our copy goes; the sync carries it out.
    a.rm(s.conflicts[0]!.conflictPath);
    await a.sync();
    await b.sync();
    await a.sync();
    for (const files of [a.files(), b.files(), w.storageFiles()]) expect(files).toEqual({ 'r.txt': 'newer edit on b' });
  });

  it('5. the delete limit holds in a small home: deleting 5 of 9 files is refused until confirmed', async () => {
    const a = w.laptop('a');
    for (let i = 0; i < 9; i++) a.write(`f${i}.txt`, `f${i}`);
    await a.sync();
    for (let i = 0; i < 5; i++) a.rm(`f${i}.txt`);
    const err = await a.sync().then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TabulaError);
    expect((err as TabulaError).code).toBe('sync-refused');
    expect((err as TabulaError).message).toBe('This sync would delete 5 of 9 files on the storage (more than 50%). Nothing was changed.');
    expect((err as TabulaError).details).toHaveLength(5);
    expect(Object.keys(w.storageFiles())).toHaveLength(9);
    await a.sync({ force: true });
    expect(Object.keys(w.storageFiles())).toHaveLength(4);
    // Deleting up to half is ordinary, also when the home is small.
    a.rm('f5.txt');
    a.rm('f6.txt');
    await a.sync();
    expect(Object.keys(w.storageFiles())).toHaveLength(2);
  });
});

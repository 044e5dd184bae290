// rclone bisync's published integration scenarios (cmd/bisync/testdata), in Tabula's terms: Path1 is
// the home of laptop "a", Path2 is the storage (edited by hand here, so each run lists it in full:
// `verify`). "resync" is Tabula's first sync (a union); rclone's RCLONE_TEST check-access file is the
// storage marker; --max-delete is maxDeletePercent; --remove-empty-dirs is how Tabula treats folders
// anyway (a folder is an entry of its own). Real rsync into a real folder.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TabulaError } from '../../src-main/common/errors';
import type { SyncOptions } from '../../src-main/core/sync/engine';
import { createWorld, type Laptop, type World } from '../fixtures/laptops';

const d = (day: string) => new Date(`${day}T12:00:00Z`);
let w: World;
let a: Laptop;
const S = (rel: string) => path.join(w.storageDir, rel);
function onStorage(rel: string, content: string, mtime?: Date) {
  fs.mkdirSync(path.dirname(S(rel)), { recursive: true });
  fs.writeFileSync(S(rel), content);
  if (mtime) fs.utimesSync(S(rel), mtime, mtime);
}
const sync = (o: Partial<SyncOptions> = {}) => a.sync({ verify: true, ...o });
async function refused(p: Promise<unknown>): Promise<TabulaError> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(TabulaError);
  expect((err as TabulaError).code).toBe('sync-refused');
  return err as TabulaError;
}
/** rclone's initial set: file1…file8 at the top, subdir/file20 and a marker-like file. */
async function initial() {
  for (let i = 1; i <= 8; i++) a.write(`file${i}.txt`, `file${i} base`, d('2000-01-01'));
  a.write('subdir/file20.txt', 'file20 base', d('2000-01-01'));
  await sync();
}

beforeEach(() => {
  w = createWorld();
  a = w.laptop('a');
});
afterEach(() => w.dispose());

describe('rclone bisync scenarios, in Tabula terms', () => {
  it('basic: a change on the storage arrives, a change in the home goes up', async () => {
    await initial();
    onStorage('file1.txt', 'file1 newer on storage', d('2001-01-02'));
    a.write('file2.txt', 'file2 newer at home', d('2001-01-02'));
    const s = await sync();
    expect([s.pulled, s.pushed]).toEqual([['file1.txt'], ['file2.txt']]);
    expect(w.storageFiles()).toEqual(a.files());
  });

  it('changes: every kind of change on either side, in one run', async () => {
    await initial();
    onStorage('file10.txt', 'new on storage', d('2001-01-02')); // new on Path2
    onStorage('file1.txt', 'newer on storage', d('2001-01-02')); // newer on Path2
    a.write('file11.txt', 'new at home', d('2001-01-02')); // new on Path1
    a.write('file2.txt', 'newer at home', d('2001-01-02')); // newer on Path1
    fs.rmSync(S('file3.txt')); // deleted on Path2
    a.rm('file4.txt'); // deleted on Path1
    a.rm('file8.txt'); // deleted on both
    fs.rmSync(S('file8.txt'));
    onStorage('file5.txt', 'file5R changed on storage', d('2001-01-02')); // changed on both
    a.write('file5.txt', 'file5L changed at home', d('2001-03-04'));
    onStorage('file6.txt', 'file6 newer on storage', d('2001-01-02')); // newer on Path2, deleted on Path1
    a.rm('file6.txt');
    a.write('file7.txt', 'file7 newer at home', d('2001-01-02')); // newer on Path1, deleted on Path2
    fs.rmSync(S('file7.txt'));
    const s = await sync();
    expect(s.conflicts).toEqual([expect.objectContaining({ path: 'file5.txt', kept: 'local' })]);
    const files = a.files();
    expect(files).toMatchObject({ 'file10.txt': 'new on storage', 'file1.txt': 'newer on storage', 'file11.txt': 'new at home', 'file2.txt': 'newer at home' });
    expect(files).toMatchObject({ 'file5.txt': 'file5L changed at home', [s.conflicts[0]!.conflictPath]: 'file5R changed on storage' });
    expect(files).toMatchObject({ 'file6.txt': 'file6 newer on storage', 'file7.txt': 'file7 newer at home' }); // modified beats deleted
    for (const gone of ['file3.txt', 'file4.txt', 'file8.txt']) expect(files[gone]).toBeUndefined();
    expect(w.storageFiles()).toEqual(files);
  });

  it('all changed: new times on every file (the marker too) sync like any edit, and nothing is lost', async () => {
    await initial();
    for (const f of Object.keys(a.files())) fs.utimesSync(path.join(a.home, f), d('2005-01-02'), d('2005-01-02'));
    fs.utimesSync(S('.tabula-storage'), d('2004-01-02'), d('2004-01-02'));
    const s = await sync();
    expect(s.pushed.sort()).toEqual(Object.keys(a.files()).sort());
    for (const f of Object.keys(a.files())) expect(fs.statSync(S(f)).mtime).toEqual(d('2005-01-02'));
    expect(w.storageFiles()).toEqual(a.files());
  });

  it('check access: a storage without its marker is refused, changing nothing, until the marker is back', async () => {
    await initial();
    const marker = fs.readFileSync(S('.tabula-storage'));
    fs.rmSync(S('.tabula-storage'));
    fs.rmSync(S('subdir'), { recursive: true });
    const err = await refused(sync());
    expect(err.details).toEqual(['~/subdir/file20.txt']);
    expect(a.read('subdir/file20.txt')).toBe('file20 base');
    fs.writeFileSync(S('.tabula-storage'), marker);
    await sync();
    expect(a.read('subdir/file20.txt')).toBeNull(); // now the deletion is trusted
  });

  it('dry run: the plan is reported, nothing changes on either side, and the real run then does it', async () => {
    await initial();
    onStorage('file1.txt', 'newer on storage', d('2001-01-02'));
    a.write('file2.txt', 'newer at home', d('2001-01-02'));
    a.rm('file4.txt');
    const before = [a.files(), w.storageFiles(), fs.readFileSync(path.join(a.stateDir, 'sync-archive'), 'utf8')];
    const dry = await sync({ dryRun: true });
    expect([dry.pulled, dry.pushed, dry.deletedRemote]).toEqual([['file1.txt'], ['file2.txt'], ['file4.txt']]);
    expect([a.files(), w.storageFiles(), fs.readFileSync(path.join(a.stateDir, 'sync-archive'), 'utf8')]).toEqual(before);
    const real = await sync();
    expect([real.pulled, real.pushed, real.deletedRemote]).toEqual([['file1.txt'], ['file2.txt'], ['file4.txt']]);
  });

  it('equal: the same new content on both sides, at other times, is no conflict', async () => {
    await initial();
    onStorage('file1.txt', 'same new content', d('2001-01-02'));
    a.write('file1.txt', 'same new content', d('2001-03-04'));
    const s = await sync();
    expect(s.conflicts).toEqual([]);
    expect(a.read('file1.txt')).toBe('same new content');
    expect(w.storageFiles()).toEqual(a.files());
  });

  it('extended names: spaces, accents, emoji, CJK, quotes, a leading dash, ";" and "#" go both ways', async () => {
    await initial();
    const names = ['file with spaces.txt', 'Русский ě áñ.txt', '測試 👸🏼🧝🏾‍♀️.txt', "it's \"quoted\".txt", '-leading dash.txt', '; not a comment.txt', '#hash.txt', 'sub dir/ünïcödé.txt'];
    names.slice(0, 4).forEach((n) => a.write(n, `home ${n}`, d('2001-01-02')));
    names.slice(4).forEach((n) => onStorage(n, `storage ${n}`, d('2001-01-02')));
    await sync();
    for (const n of names) expect(a.files()[n]).toMatch(/^(home|storage) /);
    expect(w.storageFiles()).toEqual(a.files());
  });

  it('normalization: an NFC name at home and the NFD spelling on the storage are two files, both kept', async () => {
    await initial();
    const nfc = 'folder éééö.txt'.normalize('NFC');
    const nfd = 'folder éééö.txt'.normalize('NFD');
    expect(nfc).not.toBe(nfd);
    a.write(nfc, 'NFC at home', d('2001-01-02'));
    onStorage(nfd, 'NFD on storage', d('2001-01-03'));
    await sync();
    expect(a.files()).toMatchObject({ [nfc]: 'NFC at home', [nfd]: 'NFD on storage' });
    expect(w.storageFiles()).toEqual(a.files());
  });

  it('max delete: more than half the files deleted on either side is refused until confirmed', async () => {
    await initial();
    for (let i = 1; i <= 5; i++) fs.rmSync(S(`file${i}.txt`)); // 5 of 9 on the storage (Path2)
    const err = await refused(sync());
    expect(err.message).toBe('This sync would delete 5 of 9 files in your home (more than 50%). Nothing was changed.');
    expect(Object.keys(a.files())).toHaveLength(9);
    await sync({ force: true });
    expect(Object.keys(a.files())).toHaveLength(4);
    // And from the home side (Path1).
    for (const f of ['file6.txt', 'file7.txt', 'file8.txt']) a.rm(f);
    await refused(sync());
    await sync({ force: true });
    expect(w.storageFiles()).toEqual({ 'subdir/file20.txt': 'file20 base' });
  });

  it('rmdirs: a folder emptied stays on both sides; the empty folder deleted goes on both sides', async () => {
    await initial();
    a.rm('subdir/file20.txt');
    await sync();
    expect(fs.statSync(S('subdir')).isDirectory()).toBe(true);
    expect(fs.readdirSync(S('subdir'))).toEqual([]);
    a.rm('subdir');
    await sync();
    expect(fs.existsSync(S('subdir'))).toBe(false);
  });

  it('volatile: files made on both sides while a sync runs are not lost, and the next run carries them', async () => {
    await initial();
    a.write('file1.txt', 'changed at home', d('2001-01-02'));
    let made = false;
    await sync({
      onProgress: (p) => {
        if (made || p.phase !== 'pushing') return;
        made = true;
        for (let i = 0; i < 50; i++) {
          a.write(`during/home${i}.txt`, `h${i}`);
          onStorage(`during/storage${i}.txt`, `s${i}`);
        }
      },
    });
    expect(made).toBe(true);
    await sync();
    const files = a.files();
    for (let i = 0; i < 50; i++) expect([files[`during/home${i}.txt`], files[`during/storage${i}.txt`]]).toEqual([`h${i}`, `s${i}`]);
    expect(w.storageFiles()).toEqual(files);
  });

  it('resolve: the newer keeps the name, the other is a conflict copy; removing the copy leaves one file everywhere', async () => {
    await initial();
    onStorage('file1.txt', 'file1R', d('2001-01-02'));
    a.write('file1.txt', 'file1L newer', d('2001-03-04'));
    const s = await sync();
    expect(s.conflicts).toEqual([expect.objectContaining({ path: 'file1.txt', kept: 'local' })]);
    expect(s.conflicts[0]!.conflictPath).toMatch(/^file1\.conflict-20010102-120000-[^/]+\.txt$/); // the storage's version, by its time
    a.rm(s.conflicts[0]!.conflictPath); // "keep mine"
    await sync();
    await sync();
    expect(Object.keys(w.storageFiles()).filter((f) => f.startsWith('file1'))).toEqual(['file1.txt']);
    expect(w.storageFiles()).toEqual(a.files());
  });

  it('concurrent: a file changed on the storage while the sync runs is neither lost nor taken for synced', async () => {
    await initial();
    a.write('file2.txt', 'home edit', d('2001-01-02'));
    onStorage('file1.txt', 'storage edit', d('2001-01-02'));
    let changed = false;
    await sync({
      onProgress: (p) => {
        if (changed || p.phase !== 'pushing') return;
        changed = true;
        onStorage('file1.txt', 'storage edit, again during the sync', d('2023-08-26'));
      },
    });
    expect(changed).toBe(true);
    await sync();
    expect(a.read('file1.txt')).toBe('storage edit, again during the sync');
    expect(w.storageFiles()).toEqual(a.files());
  });
});

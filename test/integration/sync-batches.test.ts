// rsync given the names in batches (engine.ts RSYNC_BATCH; here 3 names a run) over a real sshd: every
// batch's names arrive, folders keep their times across batches, a file deleted while the job runs is
// passed over, and a connection lost between batches loses nothing and the next run finishes the job.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Laptop, World } from '../fixtures/laptops';
import { useWorldOverSsh } from '../fixtures/world-over-ssh';

const BATCH = 8;
/**
 * An exclude with a "?", which rsync's own filters are not trusted to read as the listing does (engine.ts
 * rsyncExact): a first sync then names every path to rsync, in batches, as every later sync does. (A
 * first sync onto an empty storage with plain excludes lets rsync walk the home itself.)
 */
const LISTED = { excludes: ['/.local/state/tabula/', '/.cache/', '*.sw?'] };
const old = new Date('2020-03-04T05:06:07Z');

/** The real rsync, behind a script on PATH that notes how many names each run was given (--files-from). */
function countRsyncRuns() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-rsync-runs-'));
  const log = path.join(dir, 'runs');
  const real = ['/usr/bin/rsync', '/bin/rsync'].find((p) => fs.existsSync(p))!;
  fs.writeFileSync(
    path.join(dir, 'rsync'),
    `#!/bin/sh\nfor a; do case "$a" in --files-from=:*) echo storage >> '${log}.where';; --files-from=*) echo here >> '${log}.where'; tr -cd '\\000' < "\${a#--files-from=}" | wc -c >> '${log}';; esac; done\nexec ${real} "$@"\n`,
    { mode: 0o755 },
  );
  const before = process.env.PATH;
  process.env.PATH = `${dir}:${before}`;
  return {
    /** Names given to each rsync run so far. */
    runs: () => (fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n').filter(Boolean).map(Number) : []),
    /** Where each run read its list of names: 'here' (a local file) or 'storage' (`--files-from=:path`). */
    where: () => (fs.existsSync(`${log}.where`) ? fs.readFileSync(`${log}.where`, 'utf8').trim().split('\n').filter(Boolean) : []),
    restore() {
      process.env.PATH = before;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** 4 folders of 5 files, the folders' times set after their files: 24 entries, 3 batches of 8. */
function fillHome(a: Laptop) {
  for (let d = 0; d < 4; d++) for (let f = 0; f < 5; f++) a.write(`dir${d}/file${f}.txt`, `content ${d}.${f}`);
  for (let d = 0; d < 4; d++) fs.utimesSync(path.join(a.home, `dir${d}`), old, old);
}

const files = (n = 20) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`dir${Math.floor(i / 5)}/file${i % 5}.txt`, `content ${Math.floor(i / 5)}.${i % 5}`]));

describe('rsync runs in batches over ssh', { timeout: 120_000 }, () => {
  const { world, sshd } = useWorldOverSsh();
  let w: World;
  let counter: ReturnType<typeof countRsyncRuns>;
  beforeEach(() => {
    w = world();
    counter = countRsyncRuns();
  });
  afterEach(() => counter.restore());

  it('a first sync gives rsync at most a batch of names a run, sends them all, and folders keep their times', async () => {
    const a = w.laptop('a');
    fillHome(a);
    const s = await a.sync({ rsyncBatch: BATCH, ...LISTED });
    expect(s.counts.pushed).toBe(20);
    expect(w.storageFiles()).toEqual(files());
    const runs = counter.runs();
    expect(Math.max(...runs)).toBeLessThanOrEqual(BATCH);
    expect(runs.reduce((x, y) => x + y, 0)).toBeGreaterThanOrEqual(24); // every entry, and the folders again
    for (let d = 0; d < 4; d++) expect(fs.statSync(path.join(w.storageDir, `dir${d}`)).mtime.toISOString()).toBe(old.toISOString());

    // And back: a fresh laptop gets the whole home, in batches too, folder times included.
    const b = w.laptop('b');
    const r = await b.sync({ rsyncBatch: BATCH, ...LISTED });
    expect(r.counts.pulled).toBe(20);
    expect(b.files()).toEqual(files());
    for (let d = 0; d < 4; d++) expect(fs.statSync(path.join(b.home, `dir${d}`)).mtime.toISOString()).toBe(old.toISOString());
    expect((await a.sync({ rsyncBatch: BATCH, ...LISTED })).counts).toEqual({ pulled: 0, pushed: 0, deletedLocal: 0, deletedRemote: 0 });
  });

  it('long lists of names go to the storage for rsync to read there (it reads a local one a byte at a time): every name of every batch arrives, deletions too, and pulls read theirs here', async () => {
    const a = w.laptop('a');
    fillHome(a);
    const opts = { rsyncBatch: BATCH, ...LISTED, namesOnStorageBytes: 1 };
    const s = await a.sync(opts);
    expect(s.counts.pushed).toBe(20);
    expect(w.storageFiles()).toEqual(files());
    for (let d = 0; d < 4; d++) expect(fs.statSync(path.join(w.storageDir, `dir${d}`)).mtime.toISOString()).toBe(old.toISOString());
    expect(counter.where().filter((x) => x === 'storage').length).toBeGreaterThanOrEqual(3); // each batch of the push
    expect(counter.where()).not.toContain('here');
    expect((await a.sync(opts)).counts).toEqual({ pulled: 0, pushed: 0, deletedLocal: 0, deletedRemote: 0 });

    // Changes and deletions in the same way; a fresh laptop pulls the names from a local list.
    a.write('dir0/file0.txt', 'changed');
    a.rm('dir3/file4.txt');
    a.rm('dir2/file1.txt');
    const next = await a.sync(opts);
    expect(next.counts).toEqual({ pulled: 0, pushed: 1, deletedLocal: 0, deletedRemote: 2 });
    const now = { ...files(), 'dir0/file0.txt': 'changed' };
    delete (now as Record<string, string>)['dir3/file4.txt'];
    delete (now as Record<string, string>)['dir2/file1.txt'];
    expect(w.storageFiles()).toEqual(now);
    const before = counter.where().length;
    const b = w.laptop('b');
    expect((await b.sync(opts)).counts.pulled).toBe(18);
    expect(b.files()).toEqual(now);
    expect(counter.where().slice(before)).not.toContain('storage');
    expect((await a.sync(opts)).counts).toEqual({ pulled: 0, pushed: 0, deletedLocal: 0, deletedRemote: 0 });
  });

  it("the list of names sent to the storage is removed there when the run ends, and one a killed run left is removed by the next run that takes the lock, even one that only pulls", async () => {
    const a = w.laptop('a');
    fillHome(a);
    const opts = { rsyncBatch: BATCH, ...LISTED, namesOnStorageBytes: 1 };
    const tmpA = path.join(w.storageDir, '.tabula/tmp-a');
    // The list names every file of the home: it does not stay on the storage after the run.
    expect((await a.sync(opts)).counts.pushed).toBe(20);
    expect(counter.where()).toContain('storage');
    expect(fs.existsSync(tmpA)).toBe(false);

    // A run killed after its upload left the list (and a temporary file of rsync's) behind.
    fs.mkdirSync(tmpA, { recursive: true });
    fs.writeFileSync(path.join(tmpA, 'names'), 'dir0/file0.txt\0');
    fs.writeFileSync(path.join(tmpA, '.file1.txt.AbC123'), 'half');
    const b = w.laptop('b');
    expect((await b.sync(opts)).counts.pulled).toBe(20);
    b.write('from-b.txt', 'b');
    await b.sync(opts);
    expect((await a.sync(opts)).counts).toEqual({ pulled: 1, pushed: 0, deletedLocal: 0, deletedRemote: 0 });
    expect(fs.existsSync(tmpA)).toBe(false);
    expect(fs.existsSync(path.join(w.storageDir, '.tabula/tmp-b'))).toBe(false);
  });

  it('a file deleted while the batches run is passed over; the rest go, and nothing else is deleted', async () => {
    const a = w.laptop('a');
    fillHome(a);
    let deleted = false;
    const s = await a.sync({
      rsyncBatch: BATCH, ...LISTED,
      onProgress: (p) => {
        // In the first batch: the last file is in a batch whose list rsync has not been given yet.
        if (p.phase === 'pushing' && p.currentFile && !deleted) {
          deleted = true;
          a.rm('dir3/file4.txt');
        }
      },
    });
    expect(deleted).toBe(true);
    expect(s.counts.pushed).toBe(19);
    const rest = files(19);
    expect(w.storageFiles()).toEqual(rest);
    const next = await a.sync({ rsyncBatch: BATCH, ...LISTED });
    expect(next.counts).toEqual({ pulled: 0, pushed: 0, deletedLocal: 0, deletedRemote: 0 });
    expect(a.files()).toEqual(rest);
  });

  it('the connection lost between batches: what went is kept, nothing is lost, and the next run sends only the rest', async () => {
    const a = w.laptop('a');
    fillHome(a);
    // Its own process: the lock it cannot release on a lost connection is taken over at once when it has ended.
    const go = path.join(w.dir, 'go');
    let stopped: Promise<void> | null = null;
    const last = await a.syncInChild({ rsyncBatch: BATCH, ...LISTED, hold: { phase: 'pushing', files: 9, until: go } }, (line) => {
      // Past the second batch: the NAS goes away for good in the middle of the job.
      if (line === 'held') stopped = sshd().stop().then(() => fs.writeFileSync(go, ''));
    });
    await stopped;
    expect(last).toMatch(/^failed /);
    expect(a.files()).toEqual(files()); // the home untouched
    const first = Object.keys(w.storageFiles()).length;
    expect(first).toBeGreaterThan(0);
    expect(first).toBeLessThan(20);

    await sshd().start();
    const s = await a.sync({ rsyncBatch: BATCH, ...LISTED });
    expect(s.counts.pushed).toBeLessThan(20); // resumed, not started over
    expect(s.counts.deletedLocal + s.counts.deletedRemote).toBe(0);
    expect(w.storageFiles()).toEqual(files());
    expect(a.files()).toEqual(files());
    expect((await a.sync({ rsyncBatch: BATCH, ...LISTED })).counts).toEqual({ pulled: 0, pushed: 0, deletedLocal: 0, deletedRemote: 0 });
  });
});

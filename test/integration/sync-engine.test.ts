// The two-way sync's safety contract, with real rsync, against a mounted folder and a real sshd.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { TabulaError } from '../../src-main/common/errors';
import { createWorld, type World } from '../fixtures/laptops';
import { startSshServer, type SshServer } from '../fixtures/sshd';

const old = new Date('2026-01-01T10:00:00Z');
const newer = new Date('2026-01-02T10:00:00Z');

async function refusal(p: Promise<unknown>): Promise<TabulaError> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(TabulaError);
  return err as TabulaError;
}

describe.each(['folder', 'ssh'])('two-way sync with a %s storage', (kind) => {
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

  it('first sync is a union: nothing deleted, both sides get everything', async () => {
    const a = w.laptop('a');
    a.write('Documents/a.txt', 'from a');
    fs.writeFileSync(path.join(w.storageDir, 'b.txt'), 'already on storage');
    const s = await a.sync();
    expect(s.firstSync).toBe(true);
    expect(a.files()).toEqual({ 'Documents/a.txt': 'from a', 'b.txt': 'already on storage' });
    expect(w.storageFiles()).toEqual(a.files());
    expect(fs.existsSync(path.join(w.storageDir, '.tabula-storage'))).toBe(true);
  });

  it('a first sync onto an empty storage sends the whole home and leaves out exactly what a listing leaves out', async () => {
    const a = w.laptop('a');
    for (let i = 0; i < 30; i++) a.write(`deep/d${i % 3}/s${i % 5}/f${i}.txt`, `file ${i}`);
    a.write('top.txt', 'top');
    // The top-level names go on rsync's command line: read as names, never as options or hosts.
    a.write('-e top.txt', 'dash');
    a.write('host:path.txt', 'colon');
    a.write('Projects/app/node_modules/pkg/index.js', 'dependency');
    a.write('Projects/app/build.log', 'log');
    a.write('Projects/keep.log.txt', 'kept');
    a.write('Projects/.tabula/inner.txt', 'only the top .tabula is Tabula\'s');
    a.write('Projects/.tabula-partial/half.txt', 'a partial transfer');
    a.write('.tabula/own.txt', "Tabula's name at the top");
    a.write('.cache/deep/x.tmp', 'cache');
    fs.chmodSync(path.join(a.home, 'deep/d1'), 0o700);
    const excludes = ['/.local/state/tabula/', '/.cache/', 'node_modules/', '*.log', '/Projects/app/*.tmp'];
    const s = await a.sync({ excludes });
    expect(s.counts.pushed).toBe(35);
    expect(s.skipped).toEqual([{ path: '.tabula', why: "the name is Tabula's own on the storage" }]);
    const sent = { ...a.files() };
    for (const gone of ['Projects/app/node_modules/pkg/index.js', 'Projects/app/build.log', 'Projects/.tabula-partial/half.txt', '.cache/deep/x.tmp']) delete sent[gone];
    delete sent['.tabula/own.txt'];
    expect(w.storageFiles()).toEqual(sent);
    expect(fs.existsSync(path.join(w.storageDir, '.tabula/own.txt'))).toBe(false);
    expect(fs.statSync(path.join(w.storageDir, 'deep/d1')).mode & 0o777).toBe(0o700);
    // Everything sent was recorded: the next run has nothing to do, and a second laptop gets the same files.
    const again = await a.sync({ excludes });
    expect([again.counts.pushed, again.counts.pulled, again.counts.deletedLocal, again.counts.deletedRemote]).toEqual([0, 0, 0, 0]);
    const b = w.laptop('b');
    await b.sync({ excludes });
    expect(b.files()).toEqual(sent);
  });

  it('propagates changes and deletions both ways, keeping old versions on the storage', async () => {
    const a = w.laptop('a');
    const b = w.laptop('b');
    a.write('notes.txt', 'v1');
    a.write('todo.txt', 'buy milk');
    await a.sync();
    await b.sync();
    expect(b.files()).toEqual({ 'notes.txt': 'v1', 'todo.txt': 'buy milk' });

    b.write('notes.txt', 'v2 from b', newer);
    b.rm('todo.txt');
    await b.sync();
    await a.sync();
    expect(a.files()).toEqual({ 'notes.txt': 'v2 from b' });
    expect(w.versions().sort()).toEqual([expect.stringMatching(/\/notes\.txt$/), expect.stringMatching(/\/todo\.txt$/)]);
    const kept = w.versions().find((v) => v.endsWith('notes.txt'))!;
    expect(fs.readFileSync(path.join(w.storageDir, '.tabula/versions', kept), 'utf8')).toBe('v1');
  });

  it('equal changes on both sides are not a conflict', async () => {
    const a = w.laptop('a');
    const b = w.laptop('b');
    a.write('x.txt', 'one');
    await a.sync();
    await b.sync();
    a.write('x.txt', 'same', newer);
    b.write('x.txt', 'same', new Date(newer.getTime() + 5000)); // same content, other time
    await a.sync();
    const s = await b.sync();
    expect(s.conflicts).toEqual([]);
    expect(b.files()).toEqual({ 'x.txt': 'same' });
  });

  it('different changes on both sides keep both copies, on both sides, and list the conflict', async () => {
    const a = w.laptop('a');
    const b = w.laptop('b');
    a.write('report.odt', 'original', old);
    await a.sync();
    await b.sync();
    a.write('report.odt', 'edited on a', newer);
    b.write('report.odt', 'edited on b (older)', new Date(newer.getTime() - 3600_000));
    await a.sync();
    const s = await b.sync();
    expect(s.conflicts).toEqual([
      { path: 'report.odt', conflictPath: 'report.conflict-20260102-090000-b.odt', kept: 'remote', at: expect.any(String), from: 'a' },
    ]);
    await a.sync();
    const both = { 'report.odt': 'edited on a', 'report.conflict-20260102-090000-b.odt': 'edited on b (older)' };
    expect(b.files()).toEqual(both);
    expect(a.files()).toEqual(both);
    expect(w.storageFiles()).toEqual(both);
    // The next runs are quiet: the conflict is settled into two files.
    expect((await b.sync()).conflicts).toEqual([]);
  });

  it('a newer local edit keeps the name and the storage version becomes the conflict copy', async () => {
    const a = w.laptop('a');
    const b = w.laptop('b');
    a.write('plan.md', 'base', old);
    await a.sync();
    await b.sync();
    a.write('plan.md', 'a edit (older)', new Date(newer.getTime() - 60_000));
    await a.sync();
    b.write('plan.md', 'b edit (newer)', newer);
    const s = await b.sync();
    expect(s.conflicts[0]).toMatchObject({ path: 'plan.md', kept: 'local', from: 'a' });
    // The storage's version is a's: its copy says so, not this laptop's name.
    expect(s.conflicts[0]!.conflictPath).toMatch(/^plan\.conflict-\d{8}-\d{6}-a\.md$/);
    expect(b.read('plan.md')).toBe('b edit (newer)');
    expect(b.read(s.conflicts[0]!.conflictPath)).toBe('a edit (older)');
    expect(w.storageFiles()).toEqual(b.files());
  });

  it('delete versus modify keeps the modified file, whichever side deleted', async () => {
    const a = w.laptop('a');
    const b = w.laptop('b');
    a.write('keep1.txt', 'base');
    a.write('keep2.txt', 'base');
    await a.sync();
    await b.sync();
    a.rm('keep1.txt');
    b.write('keep1.txt', 'modified on b', newer);
    a.write('keep2.txt', 'modified on a', newer);
    b.rm('keep2.txt');
    await a.sync();
    await b.sync();
    await a.sync();
    expect(a.files()).toEqual({ 'keep1.txt': 'modified on b', 'keep2.txt': 'modified on a' });
    expect(b.files()).toEqual(a.files());
  });

  it('restores a whole home onto a fresh laptop', async () => {
    const a = w.laptop('a');
    a.write('Pictures/cat.jpg', 'meow');
    a.write('.bashrc', 'alias ll="ls -l"');
    await a.sync();
    const fresh = w.laptop('fresh');
    const s = await fresh.sync();
    expect(s.firstSync).toBe(true);
    expect(fresh.files()).toEqual(a.files());
  });

  it('refuses to sync against a storage that lost its marker or its files, changing nothing', async () => {
    const a = w.laptop('a');
    for (let i = 0; i < 12; i++) a.write(`f${i}.txt`, `${i}`);
    await a.sync();
    const before = a.files();
    // The NAS share was not mounted: an empty folder in its place.
    fs.rmSync(w.storageDir, { recursive: true });
    fs.mkdirSync(w.storageDir);
    const err = await refusal(a.sync());
    expect(err.code).toBe('sync-refused');
    expect(err.message).toMatch(/no Tabula marker/);
    expect(err.details).toHaveLength(12);
    expect(a.files()).toEqual(before);
    // The marker is there but the files are gone.
    fs.writeFileSync(path.join(w.storageDir, '.tabula-storage'), '{}');
    expect((await refusal(a.sync())).message).toMatch(/storage .* is empty/);
    expect(a.files()).toEqual(before);
  });

  it('refuses to delete more than half of the files unless forced, on either side', async () => {
    const a = w.laptop('a');
    const b = w.laptop('b');
    for (let i = 0; i < 20; i++) a.write(`doc${i}.txt`, `${i}`);
    await a.sync();
    await b.sync();
    for (let i = 0; i < 15; i++) a.rm(`doc${i}.txt`);
    const remoteSide = await refusal(a.sync());
    expect(remoteSide.message).toMatch(/would delete 15 of 20 files on the storage/);
    expect(Object.keys(w.storageFiles())).toHaveLength(20);
    const dry = await a.sync({ dryRun: true, force: true });
    expect(dry.deletedRemote).toHaveLength(15);
    expect(Object.keys(w.storageFiles())).toHaveLength(20);
    await a.sync({ force: true });
    expect(Object.keys(w.storageFiles())).toHaveLength(5);
    const localSide = await refusal(b.sync());
    expect(localSide.message).toMatch(/would delete 15 of 20 files in your home/);
    expect(Object.keys(b.files())).toHaveLength(20);
  });

  it('a dry run reports the plan and changes nothing', async () => {
    const a = w.laptop('a');
    a.write('new.txt', 'n');
    fs.writeFileSync(path.join(w.storageDir, 'theirs.txt'), 't');
    const s = await a.sync({ dryRun: true });
    expect(s).toMatchObject({ dryRun: true, pushed: expect.arrayContaining(['new.txt']), pulled: ['theirs.txt'] });
    expect(a.files()).toEqual({ 'new.txt': 'n' });
    expect(w.storageFiles()).toEqual({ 'theirs.txt': 't' });
    expect(fs.existsSync(path.join(a.stateDir, 'sync-archive'))).toBe(false);
  });

  it('carries hostile names, links that point outside, and honours excludes on both sides', async () => {
    const a = w.laptop('a');
    const b = w.laptop('b');
    const names = ['; touch PWNED', '# comment', '$(touch PWNED2)', '-rf', '--delete', 'new\nline', 'tab\there', 'café', 'cafe\u0301', 'back\\#012slash', ' lead'];
    for (const n of names) {
      a.write(`odd/${n}`, n);
      a.write(n, n); // at the top of the home too
    }
    fs.symlinkSync('/etc/passwd', path.join(a.home, 'passwd-link'));
    a.write('.cache/big.tmp', 'cache');
    fs.mkdirSync(path.join(w.storageDir, '.cache'), { recursive: true });
    fs.writeFileSync(path.join(w.storageDir, '.cache/server.tmp'), 'server cache');
    await a.sync();
    await b.sync();
    for (const n of names) expect([b.read(`odd/${n}`), b.read(n)]).toEqual([n, n]);
    expect(fs.readlinkSync(path.join(b.home, 'passwd-link'))).toBe('/etc/passwd');
    expect(fs.lstatSync(path.join(w.storageDir, 'passwd-link')).isSymbolicLink()).toBe(true);
    expect(fs.existsSync(path.join(w.storageDir, '.cache/big.tmp'))).toBe(false);
    expect(fs.existsSync(path.join(b.home, '.cache'))).toBe(false);
    for (const m of ['PWNED', 'PWNED2']) expect(fs.existsSync(path.join(a.home, m)) || fs.existsSync(m)).toBe(false);
    // Renames of hostile names propagate as delete + create.
    b.rm('odd/new\nline');
    await b.sync();
    await a.sync();
    expect(a.read('odd/new\nline')).toBeNull();
  });
});

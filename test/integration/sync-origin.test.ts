// A conflict copy of the storage's version is named after the laptop that wrote it, not after this
// one: each laptop keeps a short record of what it pushed on the storage (origin-log.ts). Two laptops,
// real rsync, a folder storage and one over a real sshd; then a storage whose records are hostile.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { conflictStore } from '../../src-main/core/sync/conflict-store';
import { MAX_LINES, ORIGIN_DIR } from '../../src-main/core/sync/origin-log';
import { createWorld, type World } from '../fixtures/laptops';
import { startSshServer, type SshServer } from '../fixtures/sshd';

const t0 = new Date('2026-03-01T09:00:00Z');
const at = (s: number) => new Date(t0.getTime() + s * 1000);

describe.each(['folder', 'ssh'])('conflict copies name the laptop that wrote them, %s storage', { timeout: 120_000 }, (kind) => {
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

  it("this laptop's edit is newer: the storage's version becomes a copy named after the laptop that wrote it", async () => {
    const a = w.laptop('anna-laptop');
    const b = w.laptop('bob-desk');
    a.write('notes.txt', 'base', at(0));
    await a.sync();
    await b.sync();
    b.write('notes.txt', 'edit on bob-desk', at(10));
    await b.sync();
    a.write('notes.txt', 'newer edit on anna-laptop', at(20));
    const s = await a.sync();
    expect(s.conflicts).toEqual([expect.objectContaining({ path: 'notes.txt', kept: 'local', from: 'bob-desk' })]);
    const copy = s.conflicts[0]!.conflictPath;
    expect(copy).toMatch(/^notes\.conflict-\d{8}-\d{6}-bob-desk\.txt$/);
    expect(a.read(copy)).toBe('edit on bob-desk');
    expect(a.read('notes.txt')).toBe('newer edit on anna-laptop');
    // The inbox reads the record this laptop keeps.
    expect(conflictStore(a.stateDir).load().value[0]).toMatchObject({ from: 'bob-desk' });
    await b.sync();
    expect(b.files()).toEqual(a.files());
  });

  it("the storage's edit is newer: it keeps the name, the copy is this laptop's, and the inbox knows who wrote the storage's", async () => {
    const a = w.laptop('anna-laptop');
    const b = w.laptop('bob-desk');
    a.write('notes.txt', 'base', at(0));
    await a.sync();
    await b.sync();
    a.write('notes.txt', 'older edit on anna-laptop', at(10));
    b.write('notes.txt', 'newer edit on bob-desk', at(20));
    await b.sync();
    const s = await a.sync();
    expect(s.conflicts).toEqual([expect.objectContaining({ kept: 'remote', from: 'bob-desk' })]);
    expect(s.conflicts[0]!.conflictPath).toMatch(/-anna-laptop\.txt$/);
  });

  it('a version nobody recorded (written on the storage by hand) is named "storage"', async () => {
    const a = w.laptop('anna-laptop');
    a.write('notes.txt', 'base', at(0));
    await a.sync();
    fs.writeFileSync(path.join(w.storageDir, 'notes.txt'), 'edited on the server');
    fs.utimesSync(path.join(w.storageDir, 'notes.txt'), at(10), at(10));
    a.write('notes.txt', 'newer edit on anna-laptop', at(20));
    const s = await a.sync({ verify: true });
    expect(s.conflicts[0]!.conflictPath).toMatch(/-storage\.txt$/);
    expect(s.conflicts[0]!.from).toBeUndefined();
  });
});

describe('the record on the storage is hostile until checked, and stays small', { timeout: 120_000 }, () => {
  let w: World;
  beforeEach(() => {
    w = createWorld();
  });
  afterEach(() => w.dispose());

  it('names that are not host names, links, folders and garbage are ignored; a real record still counts', async () => {
    const a = w.laptop('anna-laptop');
    const b = w.laptop('bob-desk');
    a.write('notes.txt', 'base', at(0));
    await a.sync();
    await b.sync();
    b.write('notes.txt', 'edit on bob-desk', at(10));
    await b.sync();
    const dir = path.join(w.storageDir, ORIGIN_DIR);
    const real = fs.readFileSync(path.join(dir, 'bob-desk'), 'utf8');
    // Someone with write access to the storage claims the same version under hostile names (each
    // sorts before the real record, which would otherwise win).
    fs.writeFileSync(path.join(dir, '.hidden'), real);
    fs.writeFileSync(path.join(dir, 'a$(touch pwned)'), real);
    fs.writeFileSync(path.join(dir, 'a\nline'), real);
    fs.writeFileSync(path.join(w.dir, 'outside'), real);
    fs.symlinkSync(path.join(w.dir, 'outside'), path.join(dir, 'a-linked'));
    fs.mkdirSync(path.join(dir, 'afolder'));
    fs.writeFileSync(path.join(dir, 'aaa-garbage'), Buffer.concat([Buffer.alloc(300_000, 0x41), Buffer.from('\n\0\n')]));
    a.write('notes.txt', 'newer edit on anna-laptop', at(20));
    const s = await a.sync();
    expect(s.conflicts[0]!.from).toBe('bob-desk');
    expect(s.conflicts[0]!.conflictPath).toMatch(/-bob-desk\.txt$/);
    expect(fs.existsSync(path.join(dir, 'pwned'))).toBe(false);
  });

  it("a laptop's record keeps only its newest pushes", async () => {
    const a = w.laptop('anna-laptop');
    for (let i = 0; i < MAX_LINES + 50; i++) a.write(`many/f${i}`, String(i));
    await a.sync();
    const lines = fs.readFileSync(path.join(w.storageDir, ORIGIN_DIR, 'anna-laptop'), 'utf8').trim().split('\n');
    expect(lines).toHaveLength(MAX_LINES);
    // The origin area is Tabula's own: never synced to a laptop.
    const b = w.laptop('bob-desk');
    await b.sync();
    expect(fs.existsSync(path.join(b.home, ORIGIN_DIR))).toBe(false);
  });
});

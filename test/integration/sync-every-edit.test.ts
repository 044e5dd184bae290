// Every edit seen: an edit that puts size and modification time back (`touch -r`, `rsync -t`, editors
// that keep the time) still reaches the other laptop, because the home's inode and change time count
// too (as in Unison). Real files, real rsync, a storage folder.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { createWorld, type World } from '../fixtures/laptops';

let w: World;
beforeEach(() => {
  w = createWorld();
});
afterEach(() => w.dispose());

it('an in-place edit with size and time restored by touch -r is synced', async () => {
  const a = w.laptop('a');
  const b = w.laptop('b');
  a.write('thesis.txt', 'chapter one: draft');
  await a.sync();
  await b.sync();
  const file = path.join(a.home, 'thesis.txt');
  const ref = path.join(w.dir, 'ref');
  execFileSync('cp', ['-p', file, ref]);
  fs.writeFileSync(file, 'chapter one: final'); // same size, same inode
  execFileSync('touch', ['-r', ref, file]);
  expect(fs.statSync(file, { bigint: true }).mtimeNs).toBe(fs.statSync(ref, { bigint: true }).mtimeNs);
  const s = await a.sync();
  expect(s.pushed).toEqual(['thesis.txt']);
  await b.sync();
  expect(b.read('thesis.txt')).toBe('chapter one: final');
});

it("on the storage too, from the first sync on: an edit there restoring size and time is found by the next full look", async () => {
  const a = w.laptop('a');
  a.write('budget.ods', 'plan A');
  a.write('docs/letter.txt', 'dear B');
  const first = await a.sync(); // onto an empty storage: the storage's stamps are read at the release
  expect(first.counts.pushed).toBe(2);
  const file = path.join(w.storageDir, 'docs/letter.txt');
  const ref = path.join(w.dir, 'ref');
  execFileSync('cp', ['-p', file, ref]);
  fs.writeFileSync(file, 'dear C'); // in place, by the helpdesk's restore tool: same size, same inode
  execFileSync('touch', ['-r', ref, file]);
  const s = await a.sync({ verify: true });
  expect(s.pulled).toEqual(['docs/letter.txt']);
  expect(a.read('docs/letter.txt')).toBe('dear C');
});

it('a file replaced by another of the same size and time (rsync -t, save-by-rename) is synced', async () => {
  const a = w.laptop('a');
  const b = w.laptop('b');
  a.write('notes.txt', 'aaaa');
  await a.sync();
  await b.sync();
  // rsync -t from elsewhere: a new file (new inode) carrying the old one's size and time.
  const elsewhere = path.join(w.dir, 'elsewhere.txt');
  fs.writeFileSync(elsewhere, 'bbbb');
  execFileSync('touch', ['-r', path.join(a.home, 'notes.txt'), elsewhere]);
  const before = fs.statSync(path.join(a.home, 'notes.txt')).ino;
  execFileSync('rsync', ['-t', '--ignore-times', elsewhere, path.join(a.home, 'notes.txt')]);
  expect(fs.statSync(path.join(a.home, 'notes.txt')).ino).not.toBe(before);
  await a.sync();
  await b.sync();
  expect(b.read('notes.txt')).toBe('bbbb');
});

it('a file received is not sent back, and an edit to it afterwards is still seen', async () => {
  const a = w.laptop('a');
  const b = w.laptop('b');
  a.write('shared.txt', 'from a, v1');
  await a.sync();
  expect((await b.sync()).pulled).toEqual(['shared.txt']);
  // b records the received file's own inode and change time on its next run; nothing moves.
  const quiet = await b.sync();
  expect([...quiet.pushed, ...quiet.pulled]).toEqual([]);
  const file = path.join(b.home, 'shared.txt');
  const ref = path.join(w.dir, 'ref');
  execFileSync('cp', ['-p', file, ref]);
  fs.writeFileSync(file, 'from b, v2');
  execFileSync('touch', ['-r', ref, file]);
  expect((await b.sync()).pushed).toEqual(['shared.txt']);
  await a.sync();
  expect(a.read('shared.txt')).toBe('from b, v2');
});

it("after runs that found nothing changed (the home compared in find's own order, not sorted), an edit restoring size and time and a new file are both seen", async () => {
  const a = w.laptop('a');
  const b = w.laptop('b');
  for (let i = 0; i < 30; i++) a.write(`d${i % 3}/f${i}.txt`, `file ${i}`);
  await a.sync();
  await b.sync();
  for (let i = 0; i < 3; i++) expect((await a.sync()).counts).toEqual({ pulled: 0, pushed: 0, deletedLocal: 0, deletedRemote: 0 });
  const file = path.join(a.home, 'd1/f4.txt');
  const ref = path.join(w.dir, 'ref');
  execFileSync('cp', ['-p', file, ref]);
  fs.writeFileSync(file, 'FILE 4'); // same size, same folder, same inode
  execFileSync('touch', ['-r', ref, file]);
  expect((await a.sync()).pushed).toEqual(['d1/f4.txt']);
  expect((await a.sync()).counts.pushed).toBe(0);
  a.write('d2/new.txt', 'new');
  expect((await a.sync()).pushed).toEqual(['d2/new.txt']);
  await b.sync();
  expect(b.read('d1/f4.txt')).toBe('FILE 4');
  expect(b.read('d2/new.txt')).toBe('new');
});

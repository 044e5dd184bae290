import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createJsonStore, readJsonDocument, readSmallRegularFile, SMALL_FILE_MAX_BYTES, writeFileAtomic } from '../../src-main/core/atomic-file';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-atomic-'));
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

it('falls back to exactly what was last saved when the file is damaged, keeping the damaged one', () => {
  const file = path.join(dir, 'history.json');
  const store = createJsonStore(file, z.array(z.number()), () => []);
  store.save([1]);
  store.save([1, 2]);
  fs.writeFileSync(file, '[1, 2, 3'); // a crash or a hand edit
  const loaded = store.load();
  expect(loaded.value).toEqual([1, 2]); // `.bak` is the last state saved: nothing saved is lost
  expect(loaded.problem).toMatch(/not valid JSON.*using the last good copy \(the damaged file was kept as history\.json\.damaged-\d+\)/);
  const aside = fs.readdirSync(dir).find((f) => f.startsWith('history.json.damaged-'))!;
  expect(fs.readFileSync(path.join(dir, aside), 'utf8')).toBe('[1, 2, 3');
  // Restored in place: the next load (another store on the same file) reads it without a problem.
  expect(createJsonStore(file, z.array(z.number()), () => []).load()).toEqual({ value: [1, 2], problem: null });
});

it('without a good copy: starts empty saying so on every load, and keeps the damaged file until something new is saved', () => {
  const file = path.join(dir, 'journal.json');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(file, '{"not": "an array"}');
  const store = createJsonStore(file, z.array(z.number()), () => []);
  for (let i = 0; i < 2; i++) {
    const loaded = store.load();
    expect(loaded.value).toEqual([]);
    expect(loaded.problem).toMatch(/invalid value.*no good copy: starting afresh/);
    expect(fs.readFileSync(file, 'utf8')).toBe('{"not": "an array"}');
  }
  store.save([7]);
  const aside = fs.readdirSync(dir).find((f) => f.startsWith('journal.json.damaged-'))!;
  expect(fs.readFileSync(path.join(dir, aside), 'utf8')).toBe('{"not": "an array"}');
  expect(store.load()).toEqual({ value: [7], problem: null });
});

describe('readJsonDocument: the one way a JSON file is read', () => {
  const schema = z.object({ storage: z.object({ url: z.string() }).strict() }).strict();
  const write = (name: string, text: string | Buffer) => {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, name), text);
    return path.join(dir, name);
  };
  it('reads a good file', () => {
    expect(readJsonDocument(write('ok.json', '{"storage":{"url":"/nas"}}'), schema)).toEqual({ status: 'ok', value: { storage: { url: '/nas' } } });
  });
  it('names what is wrong: corrupt, truncated, an unknown key, a wrong type', () => {
    expect(readJsonDocument(write('c.json', Buffer.from([0xff, 0xfe, 0x00, 0x7b])), schema)).toMatchObject({ status: 'invalid', problem: expect.stringMatching(/^is not valid JSON \(/) });
    expect(readJsonDocument(write('t.json', '{"storage":{"url":"/n'), schema)).toMatchObject({ status: 'invalid', problem: expect.stringMatching(/^is not valid JSON \(/) });
    expect(readJsonDocument(write('k.json', '{"storage":{"url":"/n","proxy":"x"}}'), schema)).toEqual({ status: 'invalid', problem: 'has an unknown key "storage.proxy"' });
    expect(readJsonDocument(write('v.json', '{"storage":{"url":5}}'), schema)).toMatchObject({ status: 'invalid', problem: expect.stringMatching(/^has an invalid value at "storage\.url": /) });
  });
  it('refuses an oversized file without reading it whole, and a symlink without following it', () => {
    const big = write('big.json', `{"storage":{"url":"${'a'.repeat(SMALL_FILE_MAX_BYTES)}"}}`);
    expect(readJsonDocument(big, schema)).toMatchObject({ status: 'invalid', problem: expect.stringMatching(/^is too large/) });
    const target = write('target.json', '{"storage":{"url":"/elsewhere"}}');
    fs.symlinkSync(target, path.join(dir, 'link.json'));
    expect(readJsonDocument(path.join(dir, 'link.json'), schema)).toEqual({ status: 'invalid', problem: 'is a symbolic link, which Tabula does not follow here' });
    expect(readJsonDocument(path.join(dir, 'none.json'), schema)).toEqual({ status: 'missing' });
  });
});

describe('readSmallRegularFile: what someone else may have put at a config or prefs path', () => {
  it('reads a regular file', () => {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'a.json'), '{}');
    const r = readSmallRegularFile(path.join(dir, 'a.json'));
    expect(r.status === 'ok' && r.data.toString()).toBe('{}');
  });

  it('refuses a symlink instead of following it', () => {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'real'), '{}');
    fs.symlinkSync(path.join(dir, 'real'), path.join(dir, 'link'));
    expect(readSmallRegularFile(path.join(dir, 'link'))).toEqual({ status: 'invalid', problem: expect.stringMatching(/symbolic link/) });
  });

  it('refuses a FIFO at once instead of waiting for a writer', () => {
    fs.mkdirSync(dir, { recursive: true });
    execFileSync('mkfifo', [path.join(dir, 'fifo')]);
    const started = Date.now();
    expect(readSmallRegularFile(path.join(dir, 'fifo'))).toEqual({ status: 'invalid', problem: 'is not a regular file (a pipe)' });
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('refuses /dev/zero and a folder, and reads /dev/null as no file', () => {
    expect(readSmallRegularFile('/dev/zero')).toEqual({ status: 'invalid', problem: 'is not a regular file (a device)' });
    expect(readSmallRegularFile(os.tmpdir()).status).toBe('invalid');
    expect(readSmallRegularFile('/dev/null')).toEqual({ status: 'missing' });
  });

  it('refuses a file over 1 MiB, and reads one of exactly 1 MiB', () => {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'big'), Buffer.alloc(SMALL_FILE_MAX_BYTES + 1, 32));
    fs.writeFileSync(path.join(dir, 'max'), Buffer.alloc(SMALL_FILE_MAX_BYTES, 32));
    expect(readSmallRegularFile(path.join(dir, 'big'))).toEqual({ status: 'invalid', problem: expect.stringMatching(/too large/) });
    expect(readSmallRegularFile(path.join(dir, 'max')).status).toBe('ok');
  });

  it('with privateTo, refuses a file of another user or readable by others', () => {
    fs.mkdirSync(dir, { recursive: true });
    const f = path.join(dir, 'token');
    fs.writeFileSync(f, 'secret', { mode: 0o644 });
    fs.chmodSync(f, 0o644);
    expect(readSmallRegularFile(f, { privateTo: process.getuid!() })).toEqual({ status: 'invalid', problem: expect.stringMatching(/other users \(mode 644\)/) });
    fs.chmodSync(f, 0o600);
    expect(readSmallRegularFile(f, { privateTo: process.getuid!() }).status).toBe('ok');
    expect(readSmallRegularFile(f, { privateTo: process.getuid!() + 1 })).toEqual({ status: 'invalid', problem: expect.stringMatching(/another user/) });
  });
});

describe('writeFileAtomic', () => {
  it('does not write through a symlink planted at the old predictable temp name', () => {
    fs.mkdirSync(dir, { recursive: true });
    const target = path.join(dir, 'victim');
    fs.writeFileSync(target, 'untouched');
    for (const name of [`data.tmp-${process.pid}`, 'data.tmp']) fs.symlinkSync(target, path.join(dir, name));
    writeFileAtomic(path.join(dir, 'data'), 'new', 0o600);
    expect(fs.readFileSync(target, 'utf8')).toBe('untouched');
    expect(fs.readFileSync(path.join(dir, 'data'), 'utf8')).toBe('new');
    expect(fs.statSync(path.join(dir, 'data')).mode & 0o777).toBe(0o600);
  });

  it('keeps agent state private (0600)', () => {
    const store = createJsonStore(path.join(dir, 'history.json'), z.array(z.number()), () => []);
    store.save([1]);
    expect(fs.statSync(path.join(dir, 'history.json')).mode & 0o777).toBe(0o600);
  });
});

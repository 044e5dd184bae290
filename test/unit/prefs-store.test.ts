// The preferences store on a real temp filesystem: layering, fleet locks, migrations, damaged files.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TabulaError } from '../../src-main/common/errors';
import { resolvePaths } from '../../src-main/core/paths';
import { createPrefsStore } from '../../src-main/core/prefs/prefs-store';

let dir: string;
let store: ReturnType<typeof createPrefsStore>;
const office = { uri: 'ipp://office.example/ipp/print', label: 'Office' };

function writeRootFile(rel: string, data: unknown) {
  const f = path.join(dir, 'root', rel);
  fs.mkdirSync(path.dirname(f), { recursive: true });
  fs.writeFileSync(f, typeof data === 'string' ? data : JSON.stringify(data));
}
const thrown = (fn: () => unknown): TabulaError => {
  try {
    fn();
  } catch (err) {
    return err as TabulaError;
  }
  throw new Error('did not throw');
};

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-prefs-'));
  const paths = resolvePaths({ HOME: path.join(dir, 'home'), TABULA_ROOT: path.join(dir, 'root') });
  store = createPrefsStore({ paths });
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('prefs store', () => {
  it('keeps only what the user set, in ~/.config/tabula/prefs.json, and reads it back', () => {
    store.set('printers.default', office);
    expect(store.file).toBe(path.join(dir, 'home/.config/tabula/prefs.json'));
    expect(JSON.parse(fs.readFileSync(store.file, 'utf8'))).toEqual({ version: 2, printers: { default: office } });
    expect(store.get('printers.default').value).toEqual(office);
    expect(store.get('printers.options').value).toEqual([]);
    expect(fs.statSync(store.file).mode & 0o777).toBe(0o600);
  });

  it('layers image defaults, then fleet defaults, then the user', () => {
    writeRootFile('usr/share/defaults/tabula/prefs.json', { defaults: { 'printers.default': { uri: 'ipp://image/ipp' } } });
    expect(store.get('printers.default')).toMatchObject({ value: { uri: 'ipp://image/ipp' }, sources: { 'printers.default': 'image' } });
    writeRootFile('etc/tabula/prefs.json', { defaults: { printers: { default: { uri: 'ipp://fleet/ipp' } } } });
    expect(store.get('printers.default')).toMatchObject({ value: { uri: 'ipp://fleet/ipp' }, sources: { 'printers.default': 'fleet' } });
    store.set('printers.default', office);
    expect(store.get('printers.default')).toMatchObject({ value: office, sources: { 'printers.default': 'user' } });
  });

  it('refuses to change a key the fleet locked, with the fleet reason, and changes nothing', () => {
    store.set('printers.default', office);
    const before = fs.readFileSync(store.file, 'utf8');
    writeRootFile('etc/tabula/prefs.json', { defaults: { 'printers.default': { uri: 'ipp://secure/ipp' } }, locked: { printers: 'All printing goes through the secure queue.' } });
    const err = thrown(() => store.set('printers.default', { uri: 'ipp://other/ipp' }));
    expect(err.code).toBe('pref-locked');
    expect(err.message).toContain('All printing goes through the secure queue.');
    expect(fs.readFileSync(store.file, 'utf8')).toBe(before);
    const v = store.view();
    expect(v.effective.printers.default).toEqual({ uri: 'ipp://secure/ipp' });
    expect(v.locks['printers.options']).toBe('All printing goes through the secure queue.');
    expect(v.problems.join(' ')).toMatch(/kept but not used: the fleet has locked it/);
    // Other keys stay the user's to change.
    store.set('displays.profiles', []);
  });

  it('rejects invalid values and unknown keys with a message naming the problem', () => {
    expect(thrown(() => store.set('printers.default', { uri: 'not a uri' })).message).toMatch(/must be a printer URI/);
    expect(thrown(() => store.set('printers.colour', 'x')).message).toMatch(/There is no preference "printers.colour"/);
    expect(thrown(() => store.set('printers.default', { uri: 'ipp://a/b', nickname: 'x' })).message).toMatch(/unknown key "nickname"/);
    const badWifi = [{ kind: 'wifi', name: 'Home', ssid: 'x'.repeat(33), security: 'wpa2-personal', autoconnect: true }];
    expect(thrown(() => store.set('network.profiles', badWifi)).message).toMatch(/ssid.*1 to 32 bytes/);
    expect(fs.existsSync(store.file)).toBe(false);
  });

  it('migrates a version 1 file on read and writes version 2 on the next save', () => {
    fs.mkdirSync(path.dirname(store.file), { recursive: true });
    fs.writeFileSync(store.file, JSON.stringify({ version: 1, defaultPrinterUri: 'ipp://old/ipp', printerOptions: { 'ipp://old/ipp': { media: 'A4' } } }));
    expect(store.get('printers').value).toEqual({ default: { uri: 'ipp://old/ipp' }, options: [{ printer: { uri: 'ipp://old/ipp' }, options: { media: 'A4' } }] });
    store.set('displays.profiles', []);
    expect(JSON.parse(fs.readFileSync(store.file, 'utf8'))).toMatchObject({ version: 2, printers: { default: { uri: 'ipp://old/ipp' } } });
  });

  it('falls back to the last good copy when the file is damaged, and keeps the damaged one', () => {
    store.set('printers.default', office);
    fs.writeFileSync(store.file, '{"version": 2, "printers": {"default": ');
    const v = store.view();
    expect(v.effective.printers.default).toEqual(office);
    expect(v.problems[0]).toMatch(/is not valid JSON.*last good copy.*damaged file was kept as prefs\.json\.damaged-/);
    const aside = fs.readdirSync(path.dirname(store.file)).find((f) => f.startsWith('prefs.json.damaged-'))!;
    expect(fs.readFileSync(path.join(path.dirname(store.file), aside), 'utf8')).toContain('"printers": {"default": ');
    expect(JSON.parse(fs.readFileSync(store.file, 'utf8')).printers.default).toEqual(office);
    // Brought back as privately as every save writes it.
    expect(fs.statSync(store.file).mode & 0o777).toBe(0o600);
  });

  it('a damaged file with no good copy is said on every read until something is saved, and is kept', () => {
    fs.mkdirSync(path.dirname(store.file), { recursive: true });
    fs.writeFileSync(store.file, '{"version": 2, "printers": {"default": ');
    // The agent reads it at start; the window asks later: both are told.
    for (let i = 0; i < 2; i++) expect(store.view().problems.join('\n')).toMatch(/prefs\.json is not valid JSON.*no good copy/);
    expect(fs.readFileSync(store.file, 'utf8')).toContain('"printers": {"default": ');
    store.set('printers.default', office);
    expect(store.view().problems).toEqual([]);
    const aside = fs.readdirSync(path.dirname(store.file)).find((f) => f.startsWith('prefs.json.damaged-'))!;
    expect(fs.readFileSync(path.join(path.dirname(store.file), aside), 'utf8')).toContain('"printers": {"default": ');
  });

  it('an older last good copy is migrated when it is brought back', () => {
    fs.mkdirSync(path.dirname(store.file), { recursive: true });
    fs.writeFileSync(`${store.file}.bak`, JSON.stringify({ version: 1, defaultPrinterUri: 'ipp://old/ipp' }));
    fs.writeFileSync(store.file, '{ damaged');
    const v = store.view();
    expect(v.effective.printers.default).toEqual({ uri: 'ipp://old/ipp' });
    expect(v.problems.join('\n')).toMatch(/last good copy/);
  });

  it('leaves a file from a newer Tabula alone and refuses to overwrite it', () => {
    fs.mkdirSync(path.dirname(store.file), { recursive: true });
    fs.writeFileSync(store.file, JSON.stringify({ version: 9, printers: {} }));
    expect(store.view().problems[0]).toMatch(/newer Tabula \(preferences version 9/);
    expect(thrown(() => store.set('printers.default', office)).code).toBe('prefs-invalid');
    expect(JSON.parse(fs.readFileSync(store.file, 'utf8')).version).toBe(9);
  });

  it('reports a broken fleet file by name and still applies the user and image layers', () => {
    writeRootFile('etc/tabula/prefs.json', '{ nope');
    writeRootFile('usr/share/defaults/tabula/prefs.json', { defaults: { 'printers.default': { uri: 'ipp://image/ipp' } }, locked: { 'wifi.power': 'x' } });
    const v = store.view();
    expect(v.problems.join('\n')).toMatch(/etc\/tabula\/prefs\.json is not valid JSON/);
    expect(v.problems.join('\n')).toMatch(/locks an unknown key "wifi.power"/);
    expect(v.effective.printers.default).toEqual({ uri: 'ipp://image/ipp' });
  });

  it('exports and imports; an invalid import changes nothing; locked keys keep the fleet value', () => {
    store.set('printers.default', office);
    const exported = store.exportDoc();
    const before = fs.readFileSync(store.file, 'utf8');
    expect(thrown(() => store.importDoc({ version: 2, printers: { default: { uri: '' } } })).message).toMatch(/Nothing was changed/);
    expect(thrown(() => store.importDoc({ version: 2, extras: {} })).message).toMatch(/unknown key "extras"/);
    expect(fs.readFileSync(store.file, 'utf8')).toBe(before);
    writeRootFile('etc/tabula/prefs.json', { locked: { 'printers.default': 'Fixed by IT.' } });
    const r = store.importDoc({ ...exported, printers: { default: { uri: 'ipp://elsewhere/ipp' }, options: [] } });
    expect(r.skippedLocked).toEqual(['printers.default']);
    expect(store.view().user.printers?.default).toEqual(office);
  });
});

describe('prefs files that are not plain files', () => {
  it('a prefs.json symlinked to a FIFO, and a FIFO as the fleet file, are refused without hanging', () => {
    fs.mkdirSync(path.dirname(store.file), { recursive: true });
    fs.mkdirSync(path.join(dir, 'root/etc/tabula'), { recursive: true });
    execFileSync('mkfifo', [path.join(dir, 'fifo'), path.join(dir, 'root/etc/tabula/prefs.json')]);
    fs.symlinkSync(path.join(dir, 'fifo'), store.file);
    const problems = store.view().problems.join('\n');
    expect(problems).toMatch(/prefs\.json is a symbolic link/);
    expect(problems).toMatch(/etc\/tabula\/prefs\.json is not a regular file \(a pipe\)/);
  });
});

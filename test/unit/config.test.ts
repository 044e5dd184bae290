import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src-main/core/config';
import { resolvePaths, type Paths } from '../../src-main/core/paths';

let dir: string;
let paths: Paths;
const write = (file: string, text: string) => {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
};

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-config-'));
  paths = resolvePaths({ HOME: path.join(dir, 'home'), TABULA_ROOT: path.join(dir, 'root'), TABULA_CONFIG: path.join(dir, 'extra.json') });
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('layered config', () => {
  it('uses a local storage folder when no file exists', () => {
    const { config, problems } = loadConfig(paths);
    expect(config.storage.url).toBe(path.join(dir, 'home/.local/share/tabula/storage'));
    expect(problems).toEqual([]);
  });

  it('applies image defaults, then admin, then user, then TABULA_CONFIG', () => {
    write(paths.systemDefaultsFile, JSON.stringify({ storage: { url: 'ssh://nas/home', connectTimeoutSeconds: 5 }, backup: { excludes: ['*.iso'] } }));
    write(paths.adminConfigFile, JSON.stringify({ storage: { url: 'ssh://nas2/home' } }));
    write(paths.userConfigFile, JSON.stringify({ backup: { excludes: ['/Videos/'] } }));
    expect(loadConfig(paths).config).toMatchObject({ storage: { url: 'ssh://nas2/home', connectTimeoutSeconds: 5 }, backup: { excludes: ['/Videos/'] } });
    write(paths.extraConfigFile!, JSON.stringify({ storage: { url: '/mnt/nas' } }));
    expect(loadConfig(paths).config.storage.url).toBe('/mnt/nas');
  });

  it('skips a corrupt file with a message naming it, and keeps the valid layers', () => {
    write(paths.adminConfigFile, JSON.stringify({ storage: { url: 'ssh://nas/home' } }));
    write(paths.userConfigFile, '{ "storage": { "url": ');
    const { config, problems } = loadConfig(paths);
    expect(config.storage.url).toBe('ssh://nas/home');
    expect(problems).toHaveLength(1);
    expect(problems[0]!.file).toBe(paths.userConfigFile);
    expect(problems[0]!.message).toContain(paths.userConfigFile);
    expect(problems[0]!.message).toMatch(/not valid JSON/);
  });

  it('refuses wrong types and unknown keys, saying where', () => {
    write(paths.userConfigFile, JSON.stringify({ storage: { url: 42 } }));
    write(paths.adminConfigFile, JSON.stringify({ storage: { ulr: 'typo' } }));
    const { problems, config } = loadConfig(paths);
    expect(problems.map((p) => p.message).join('\n')).toMatch(/storage\.url|storage/);
    expect(problems).toHaveLength(2);
    expect(config.storage.url).toMatch(/storage$/);
  });
});

describe('config files that are not plain files', () => {
  it('TABULA_CONFIG=/dev/zero is refused at once with a clear problem, not read forever', () => {
    const p = resolvePaths({ HOME: path.join(dir, 'home'), TABULA_ROOT: path.join(dir, 'root'), TABULA_CONFIG: '/dev/zero' });
    const { problems } = loadConfig(p);
    expect(problems.map((x) => x.message)).toEqual(['/dev/zero is not a regular file (a device). Its settings are ignored until it is fixed.']);
  });

  it('TABULA_CONFIG=/dev/null is an empty config: fine and silent', () => {
    const p = resolvePaths({ HOME: path.join(dir, 'home'), TABULA_ROOT: path.join(dir, 'root'), TABULA_CONFIG: '/dev/null' });
    expect(loadConfig(p).problems).toEqual([]);
  });

  it('a config.json that is a symlink to a FIFO is refused without hanging', () => {
    fs.mkdirSync(path.dirname(paths.userConfigFile), { recursive: true });
    execFileSync('mkfifo', [path.join(dir, 'fifo')]);
    fs.symlinkSync(path.join(dir, 'fifo'), paths.userConfigFile);
    const { problems } = loadConfig(paths);
    expect(problems[0]!.message).toMatch(/config\.json is a symbolic link/);
  });

  it('a config.json over 1 MiB is refused', () => {
    write(paths.userConfigFile, `{"backup":{"excludes":[${'"x",'.repeat(300_000)}"y"]}}`);
    expect(loadConfig(paths).problems[0]!.message).toMatch(/too large/);
  });
});

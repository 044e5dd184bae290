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

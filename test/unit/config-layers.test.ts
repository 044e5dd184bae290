// `tabula sync` reads its config through a check written by hand (no zod: a third of its memory at
// start). The schemas stay the judge: whatever the check accepts, they must accept as it is, and a
// config the check does not accept is read by the schemas, with their messages.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { layerSchema, loadConfig } from '../../src-main/core/config';
import { isPlainLayer, layerRules, loadConfigQuickly } from '../../src-main/core/config-layers';
import { resolvePaths, type Paths } from '../../src-main/core/paths';

// Values near each rule's edges, and of every other kind, so both verdicts come up often.
const anyValue = fc.oneof(
  fc.constantFrom(0, 0.04, 0.05, 1, 1.5, 5, 100, 101, 300, 301, 3600, 3650, 8760, 8761, 86400, 86401, -1, 2 ** 53, 1e300),
  fc.double(),
  fc.integer(),
  fc.constantFrom('', 'none', 'ostree', 'rsync-tree', 'stable', 'a/b', 'x'.repeat(65), 'ssh://nas/h', 'bad name', '..'),
  fc.string(),
  fc.boolean(),
  fc.constant(null),
  fc.constantFrom([], [''], ['*.iso'], ['-p', '2222'], ['-o', 'ProxyCommand=sh'], ['-i', '/k', '-o', 'StrictHostKeyChecking=yes'], ['x'], [1]),
  fc.array(fc.string(), { maxLength: 3 }),
  fc.constantFrom({}, { a: 1 }),
);
const sections = Object.keys(layerRules) as (keyof typeof layerRules)[];
const keyOf = (s: keyof typeof layerRules) => fc.oneof({ weight: 9, arbitrary: fc.constantFrom(...Object.keys(layerRules[s])) }, { weight: 1, arbitrary: fc.constantFrom('ulr', '__proto__', 'constructor', 'toString') });
const section = (s: keyof typeof layerRules) => fc.dictionary(keyOf(s), anyValue, { maxKeys: 4 });
const layer = fc.oneof(
  fc.record({ storage: section('storage'), backup: section('backup'), image: section('image'), fleet: section('fleet') }, { requiredKeys: [] }),
  fc.dictionary(fc.constantFrom(...sections, 'extra'), fc.oneof(section('backup'), anyValue), { maxKeys: 3 }),
  anyValue,
);

describe('the config check without zod', () => {
  it('accepts only what the schemas accept, as it is', () => {
    let accepted = 0;
    fc.assert(
      fc.property(layer, (raw) => {
        const json: unknown = JSON.parse(JSON.stringify(raw) ?? 'null'); // what a file can hold
        if (!isPlainLayer(json)) return;
        accepted++;
        const parsed = layerSchema.safeParse(json);
        expect(parsed.success).toBe(true);
        expect(parsed.data).toEqual(json);
      }),
      { numRuns: 5000 },
    );
    expect(accepted).toBeGreaterThan(200); // the property was really tried on accepted layers
  });

  it('knows every key of the schemas (a new key without a rule would send every config to zod)', () => {
    const shape = layerSchema.shape;
    for (const s of sections) expect(Object.keys(layerRules[s]).sort()).toEqual(Object.keys(shape[s].unwrap().shape).sort());
    expect(Object.keys(shape).sort()).toEqual([...sections].sort());
  });
});

describe('loadConfigQuickly', () => {
  let dir: string;
  let paths: Paths;
  const write = (file: string, text: string) => {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, text);
  };
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-config-q-'));
    paths = resolvePaths({ HOME: path.join(dir, 'home'), TABULA_ROOT: path.join(dir, 'root'), TABULA_CONFIG: path.join(dir, 'extra.json') });
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('gives what loadConfig gives, for good and hostile files alike, with the same messages', async () => {
    const cases: [string, string][] = [
      [paths.adminConfigFile, JSON.stringify({ storage: { url: 'ssh://nas/home', sshOptions: ['-p', '2222'] }, backup: { excludes: ['*.iso'], verifyHours: 6 } })],
      [paths.userConfigFile, JSON.stringify({ storage: { sshOptions: ['-oProxyCommand=sh -c evil'] } })],
      [paths.extraConfigFile!, JSON.stringify({ backup: { maxDeletePercent: 0 }, image: { backend: 'zfs' } })],
      [paths.systemDefaultsFile, '{ "storage": '],
    ];
    for (const [file, text] of cases) write(file, text);
    const quick = await loadConfigQuickly(paths);
    expect(quick).toEqual(loadConfig(paths));
    expect(quick.problems.map((p) => p.message).join('\n')).toMatch(/storage\.sshOptions[\s\S]*not one plain word[\s\S]*backup\.maxDeletePercent/);
    expect(quick.config.storage.url).toBe('ssh://nas/home');
  });

  it('reads a plain config without the schemas and gets the same result', async () => {
    write(paths.userConfigFile, JSON.stringify({ storage: { url: '/mnt/nas', connectTimeoutSeconds: 5 }, fleet: { machineClass: 'lab' } }));
    expect(await loadConfigQuickly(paths)).toEqual(loadConfig(paths));
  });
});

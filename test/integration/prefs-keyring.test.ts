// Network secrets in a real keyring: gnome-keyring on a private D-Bus session, reached through keytar
// in this process. The secret is in the keyring and in no plain file; a locked keyring is told apart
// from a missing secret. (No Secret Service at all: prefs-keyring-missing.test.ts, since keytar keeps
// its first bus connection for the life of the process.)
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TabulaError } from '../../src-main/common/errors';
import { networkProfileSchema } from '../../src-main/common/prefs-schema';
import { resolvePaths } from '../../src-main/core/paths';
import { secretAccount } from '../../src-main/core/prefs/network';
import { createPrefsService, type PrefsService } from '../../src-main/core/prefs/prefs-service';
import { createSandbox, repoRoot, type AgentSandbox } from '../fixtures/headless-agent';
import { startKeyring, type KeyringFixture } from '../fixtures/keyring';

const home = { kind: 'wifi', name: 'Home', ssid: 'Home network', security: 'wpa2-personal', autoconnect: true } as const;
const PSK = 'correct horse battery staple';

/** Every file under dir whose bytes contain text. */
function filesContaining(dir: string, text: string): string[] {
  const hits: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    const f = path.join(e.parentPath, e.name);
    if (fs.readFileSync(f).includes(text)) hits.push(f);
  }
  return hits;
}

describe('network secrets in a real keyring', () => {
  let keyring: KeyringFixture;
  let sb: AgentSandbox;
  let prefs: PrefsService;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    keyring = await startKeyring();
    // keytar (libsecret) connects to the session bus named here on first use.
    process.env.DBUS_SESSION_BUS_ADDRESS = keyring.env.DBUS_SESSION_BUS_ADDRESS;
    sb = createSandbox();
    env = { ...sb.env, DBUS_SESSION_BUS_ADDRESS: keyring.env.DBUS_SESSION_BUS_ADDRESS, USER: 'ann' };
    prefs = createPrefsService({ paths: resolvePaths(env), env });
  });
  afterAll(async () => {
    await sb?.dispose();
    await keyring?.stop();
  });

  it('keeps the Wi-Fi password in the keyring and in no plain file', async () => {
    const view = await prefs.saveNetworkProfile(home, PSK);
    expect(view.effective.network.profiles).toEqual([home]);
    expect(await prefs.secrets.get(secretAccount('ann', home))).toBe(PSK);
    expect(filesContaining(sb.dir, PSK)).toEqual([]);
    // gnome-keyring stores it encrypted under the keyring's own home.
    expect(filesContaining(keyring.dir, PSK)).toEqual([]);
    const state = await prefs.state();
    expect(state.network.profiles[0]).toMatchObject({ name: 'Home', hasSecret: true });
  });

  it('refuses an invalid password before anything is stored', async () => {
    const cafe = { ...home, name: 'Café', ssid: 'Café' };
    await expect(prefs.saveNetworkProfile(cafe, 'short')).rejects.toThrow(/8 to 63 characters long\. Nothing was saved/);
    expect(prefs.get().effective.network.profiles.map((p) => p.name)).toEqual(['Home']);
    expect(await prefs.secrets.get(secretAccount('ann', cafe))).toBeNull();
  });

  it('refuses a WireGuard key that is not one', async () => {
    const vpn = networkProfileSchema.parse({ kind: 'wireguard', name: 'VPN', interface: 'wg0', addresses: ['10.0.0.2/32'], peers: [{ publicKey: 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=', allowedIps: ['0.0.0.0/0'] }], autoconnect: false });
    await expect(prefs.saveNetworkProfile(vpn, 'not-a-key')).rejects.toThrow(/44 characters of base64/);
    expect(prefs.get().effective.network.profiles.map((p) => p.name)).toEqual(['Home']);
  });

  it('`tabula prefs secret NAME` reads the secret from stdin, never from the command line', () => {
    const r = spawnSync(process.execPath, [path.join(repoRoot, 'bin/tabula.js'), 'prefs', 'secret', 'Home'], { env, input: 'new password 123\n', encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/The secret for "Home" is in your keyring/);
    return expect(prefs.secrets.get(secretAccount('ann', home))).resolves.toBe('new password 123');
  });

  it('a profile without its secret is reported when applied', async () => {
    const office = { kind: 'wifi', name: 'Office', ssid: 'Corp', security: 'wpa2-enterprise-peap', identity: 'ann', noCaCertificate: true, autoconnect: true } as const;
    prefs.set('network.profiles', [home, office]);
    const report = await prefs.apply(true, ['network']);
    // Without NetworkManager on this machine the profiles are skipped with that reason; with it,
    // Office fails for its missing password. Either way nothing claims success.
    expect(report.items.every((i) => i.status !== 'applied')).toBe(true);
    expect(report.items.find((i) => i.item === 'Wi-Fi Office')!.reason).toMatch(/NetworkManager is not running|No password for "Office" is in your keyring/);
  });

  it('tells a locked keyring apart from a missing secret', async () => {
    keyring.lock();
    const err = await prefs.secrets.get(secretAccount('ann', home)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TabulaError);
    expect((err as TabulaError).code).toBe('keyring-locked');
    expect((err as TabulaError).message).toMatch(/Your keyring is locked/);
    await expect(prefs.saveNetworkProfile({ ...home, name: 'Cafe' }, PSK)).rejects.toThrow(/Your keyring is locked/);
    expect(prefs.get().effective.network.profiles.map((p) => p.name)).toEqual(['Home', 'Office']);
  });
});

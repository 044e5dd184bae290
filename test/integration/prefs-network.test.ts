// Network profiles against a real NetworkManager (own system bus, real polkitd, network namespace;
// see the fixture) with secrets in a real gnome-keyring. `tabula prefs apply` runs as the non-root
// user "nobody": the profiles become that user's own, in memory, with UUIDs that stay the same,
// and no secret reaches NetworkManager's settings or a file. Also: every profile kind validated
// by NetworkManager's own offline parser.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { networkProfileSchema, type NetworkProfile } from '../../src-main/common/prefs-schema';
import { networkSettings, profileUuid, validateOffline } from '../../src-main/core/prefs/network';
import { createSandbox, repoRoot, type AgentSandbox } from '../fixtures/headless-agent';
import { startKeyring, type KeyringFixture } from '../fixtures/keyring';
import { startNetworkManager, type NetworkManagerFixture } from '../fixtures/network-manager';

const profiles = [
  { kind: 'wifi', name: 'Home', ssid: 'Café Home', security: 'wpa2-personal', autoconnect: true },
  { kind: 'wifi', name: 'Library', ssid: 'Library', security: 'open', autoconnect: false },
  { kind: 'wifi', name: `Ann's "Flat" \\ 3; $(touch x)`, ssid: `it's "3"`, security: 'wpa3-personal', hidden: true, autoconnect: true },
  { kind: 'wifi', name: 'Corp', ssid: 'CorpNet', security: 'wpa2-enterprise-peap', identity: 'ann@example.org', caCert: '/etc/ssl/certs/ca-certificates.crt', autoconnect: true },
  {
    kind: 'wireguard',
    name: 'Office VPN',
    interface: 'wg-office',
    addresses: ['10.9.0.2/24', 'fd00:9::2/64'],
    peers: [{ publicKey: 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=', endpoint: 'vpn.example.org:51820', allowedIps: ['10.9.0.0/24'] }],
    autoconnect: false,
  },
].map((p) => networkProfileSchema.parse(p)) as NetworkProfile[];
const secrets: Record<string, string> = { Home: 'home wifi password', [`Ann's "Flat" \\ 3; $(touch x)`]: 'flat-password-3', 'Office VPN': 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=' };

describe('NetworkManager offline validation (no daemon)', () => {
  it.each(profiles.map((p) => [p.name, p] as const))('%s is a valid NetworkManager profile', async (_name, p) => {
    const r = await validateOffline(networkSettings(p, 'ann'));
    if (!r.ok) throw new Error(r.problem);
    expect(r.keyfile).toContain(`uuid=${profileUuid('ann', p)}`);
    expect(r.keyfile).toContain('permissions=user:ann:;');
  });

  it('rejects a broken profile with NetworkManager’s reason', async () => {
    const settings = networkSettings(profiles[0]!, 'ann');
    settings['802-11-wireless']!.ssid = { t: 'ay', v: Buffer.alloc(0) };
    const r = await validateOffline(settings);
    expect(r).toMatchObject({ ok: false, problem: expect.stringMatching(/ssid/) });
  });
});

describe('network profiles with a real NetworkManager, as a non-root user', () => {
  let nm: NetworkManagerFixture;
  let keyring: KeyringFixture;
  let sb: AgentSandbox;
  let env: NodeJS.ProcessEnv;

  const asNobody = (args: string[], input?: string) => {
    const r = spawnSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, path.join(repoRoot, 'bin/tabula.js'), ...args], {
      env,
      cwd: sb.dir,
      input,
      encoding: 'utf8',
      timeout: 60_000,
    });
    return { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
  };

  beforeAll(async () => {
    [nm, keyring] = await Promise.all([startNetworkManager(), startKeyring()]);
    sb = createSandbox();
    spawnSync('chown', ['-R', 'nobody:nogroup', sb.dir]);
    env = { ...sb.env, ...nm.env, DBUS_SESSION_BUS_ADDRESS: keyring.env.DBUS_SESSION_BUS_ADDRESS, USER: 'nobody', LOGNAME: 'nobody' };
  }, 60_000);
  afterAll(async () => {
    await Promise.all([sb?.dispose(), nm?.stop(), keyring?.stop()]);
  });

  it('adds the profiles as the user’s own, in memory, with stable UUIDs and secrets left in the keyring', () => {
    expect(asNobody(['prefs', 'set', 'network.profiles', JSON.stringify(profiles)]).code).toBe(0);
    for (const [name, secret] of Object.entries(secrets)) {
      const r = asNobody(['prefs', 'secret', name], secret + '\n');
      expect(r.stderr).toBe('');
    }
    const r = asNobody(['prefs', 'apply', '--only', 'network']);
    // Corp has no password saved: reported, and the others still go in.
    expect(r.stdout).toMatch(/Failed +Wi-Fi Corp: .*\n.*No password for "Corp" is in your keyring/);
    expect(r.stdout.match(/^Applied +(Wi-Fi|VPN) /gm)).toHaveLength(4);
    expect(r.code).toBe(1);

    const listed = nm.nmcli(['-t', '-f', 'NAME,UUID', 'connection', 'show']).stdout;
    // nmcli -t escapes backslashes and colons in names.
    const terse = (name: string) => name.replace(/\\/g, '\\\\').replace(/:/g, '\\:');
    for (const p of profiles.filter((p) => p.name !== 'Corp')) expect(listed).toContain(`${terse(p.name)}:${profileUuid('nobody', p)}`);
    expect(fs.existsSync(path.join(sb.dir, 'x'))).toBe(false); // the hostile name ran nothing
    const home = profileUuid('nobody', profiles[0]!);
    expect(nm.nmcli(['-g', 'connection.permissions', 'connection', 'show', 'uuid', home]).stdout.trim()).toBe('user\\:nobody'); // -g escapes the colon
    // Agent-owned: NetworkManager holds no copy of the password.
    expect(nm.nmcli(['--show-secrets', '-g', '802-11-wireless-security.psk,802-11-wireless-security.psk-flags', 'connection', 'show', 'uuid', home]).stdout.split('\n').slice(0, 2)).toEqual(['', '1']);
    // In memory: the profile lives in NetworkManager's run directory, not under /etc.
    const filename = nm.nmcli(['-g', 'connection.filename', 'connection', 'show', 'uuid', home]).stdout.trim();
    expect(filename === '' || filename.startsWith('/run/NetworkManager/')).toBe(true);
    expect(fs.readdirSync('/etc/NetworkManager/system-connections').some((f) => f.includes('Home'))).toBe(false);
    expect(fs.readdirSync(path.join(nm.dir, 'lib')).filter((f) => f !== 'NetworkManager.state')).toEqual([]);
    // WireGuard peers made it through (nmcli 1.42 could not have set them).
    const wgUuid = profileUuid('nobody', profiles[4]!);
    const dbusPath = nm.nmcli(['-t', '-f', 'UUID,DBUS-PATH', 'connection', 'show']).stdout.split('\n').find((l) => l.startsWith(wgUuid))!.split(':')[1]!;
    const wg = spawnSync('gdbus', ['call', '--system', '--dest', 'org.freedesktop.NetworkManager', '--object-path', dbusPath, '--method', 'org.freedesktop.NetworkManager.Settings.Connection.GetSettings'], { env, encoding: 'utf8' }).stdout;
    expect(wg).toContain("'public-key': <'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg='>");
    expect(wg).toContain("'endpoint': <'vpn.example.org:51820'>");
    expect(wg).toContain("'address': <'10.9.0.2'>");
  });

  it('applying again updates the same profiles instead of adding copies', () => {
    const r = asNobody(['prefs', 'apply', '--only', 'network']);
    expect(r.stdout).toMatch(/Applied +Wi-Fi Home: update your profile/);
    const names = nm.nmcli(['-t', '-f', 'NAME', 'connection', 'show']).stdout.split('\n').filter(Boolean);
    expect(names.filter((n) => n === 'Home')).toHaveLength(1);
  });

  it('a profile for another user is refused by NetworkManager, not silently changed', () => {
    const r = spawnSync(
      'setpriv',
      [
        '--reuid=nobody',
        '--regid=nogroup',
        '--clear-groups',
        'gdbus',
        'call',
        '--system',
        '--dest',
        'org.freedesktop.NetworkManager',
        '--object-path',
        '/org/freedesktop/NetworkManager/Settings',
        '--method',
        'org.freedesktop.NetworkManager.Settings.AddConnection2',
        "{'connection': {'id': <'x'>, 'type': <'802-11-wireless'>, 'permissions': <@as ['user:ann:']>}, '802-11-wireless': {'ssid': <[byte 0x78]>}}",
        '2',
        '{}',
      ],
      { env, encoding: 'utf8' },
    );
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/PermissionDenied/);
  });
});

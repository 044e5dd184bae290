// Network: Wi-Fi (open, WPA2/WPA3-Personal, WPA2-Enterprise PEAP/MSCHAPv2) and WireGuard profiles
// as the user's own NetworkManager connections: `connection.permissions` = the user (so NM's default
// polkit rules let the user add them without root), created in memory (nothing under /etc), with a
// UUID derived from the user and profile name (stable across laptops and logins), and secrets marked
// agent-owned: NetworkManager never stores them; Tabula hands them over from the keyring when the
// connection is brought up, through nmcli's stdin — never on a command line, never in a file.
//
// One settings model feeds both NetworkManager's D-Bus API (AddConnection2, in memory) and its keyfile
// format, which `nmcli --offline` validates without a daemon. nmcli 1.42 cannot set WireGuard peers,
// which is why profiles go over D-Bus (gdbus) rather than `nmcli connection add`.
import crypto from 'node:crypto';
import type { ApplyItem, NetworkProfileState } from '../../common/contract/prefs';
import type { NetworkProfile } from '../../common/prefs-schema';
import { TabulaError } from '../../common/errors';
import { firstLine, runTool } from './run-tool';
import type { Secrets } from './secrets';

// ---- identity ---------------------------------------------------------------------------------

const TABULA_NAMESPACE = 'b6d3c6f0-3a59-4f0e-9a53-5f0f6e2a7c41';

/** RFC 4122 version 5 (SHA-1, name-based) UUID. */
export function uuidV5(name: string, namespace = TABULA_NAMESPACE): string {
  const ns = Buffer.from(namespace.replace(/-/g, ''), 'hex');
  const h = crypto.createHash('sha1').update(ns).update(name, 'utf8').digest().subarray(0, 16);
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

export const profileUuid = (user: string, p: NetworkProfile) => uuidV5(`${user}\0${p.kind}\0${p.name}`);
export const secretAccount = (user: string, p: NetworkProfile) => `network/${profileUuid(user, p)}`;
export const needsSecret = (p: NetworkProfile) => p.kind === 'wireguard' || p.security !== 'open';

/** The NM setting and key the secret belongs to (what `passwd-file` lines name). */
export function secretKey(p: NetworkProfile): string | null {
  if (p.kind === 'wireguard') return 'wireguard.private-key';
  if (p.security === 'wpa2-personal' || p.security === 'wpa3-personal') return '802-11-wireless-security.psk';
  if (p.security === 'wpa2-enterprise-peap') return '802-1x.password';
  return null;
}

// ---- the settings model -------------------------------------------------------------------------

export type SettingValue =
  | { t: 's'; v: string }
  | { t: 'b'; v: boolean }
  | { t: 'u'; v: number }
  | { t: 'ay'; v: Buffer }
  | { t: 'as'; v: string[] }
  | { t: 'addresses'; v: { address: string; prefix: number }[] }
  | { t: 'peers'; v: { publicKey: string; endpoint?: string; allowedIps: string[] }[] };
export type Settings = Record<string, Record<string, SettingValue>>;

const s = (v: string): SettingValue => ({ t: 's', v });
const b = (v: boolean): SettingValue => ({ t: 'b', v });
const u = (v: number): SettingValue => ({ t: 'u', v });
const AGENT_OWNED = 1; // NM_SETTING_SECRET_FLAG_AGENT_OWNED

const splitCidr = (cidr: string) => {
  const [address, prefix] = cidr.split('/') as [string, string];
  return { address, prefix: Number(prefix) };
};

/** Pure: the NetworkManager settings for a profile owned by `user`. */
export function networkSettings(p: NetworkProfile, user: string): Settings {
  const connection: Record<string, SettingValue> = {
    id: s(p.name),
    uuid: s(profileUuid(user, p)),
    type: s(p.kind === 'wifi' ? '802-11-wireless' : 'wireguard'),
    permissions: { t: 'as', v: [`user:${user}:`] },
    autoconnect: b(p.autoconnect),
  };
  if (p.kind === 'wireguard') {
    const v4 = p.addresses.filter((a) => !a.includes(':')).map(splitCidr);
    const v6 = p.addresses.filter((a) => a.includes(':')).map(splitCidr);
    return {
      connection: { ...connection, 'interface-name': s(p.interface) },
      wireguard: { 'private-key-flags': u(AGENT_OWNED), peers: { t: 'peers', v: p.peers } },
      ipv4: v4.length ? { method: s('manual'), 'address-data': { t: 'addresses', v: v4 } } : { method: s('disabled') },
      ipv6: v6.length ? { method: s('manual'), 'address-data': { t: 'addresses', v: v6 } } : { method: s('disabled') },
    };
  }
  const wifi: Record<string, SettingValue> = { ssid: { t: 'ay', v: Buffer.from(p.ssid, 'utf8') }, mode: s('infrastructure') };
  if (p.hidden) wifi.hidden = b(true);
  const out: Settings = { connection, '802-11-wireless': wifi, ipv4: { method: s('auto') }, ipv6: { method: s('auto') } };
  if (p.security === 'wpa2-personal') out['802-11-wireless-security'] = { 'key-mgmt': s('wpa-psk'), 'psk-flags': u(AGENT_OWNED) };
  if (p.security === 'wpa3-personal') out['802-11-wireless-security'] = { 'key-mgmt': s('sae'), 'psk-flags': u(AGENT_OWNED) };
  if (p.security === 'wpa2-enterprise-peap') {
    out['802-11-wireless-security'] = { 'key-mgmt': s('wpa-eap') };
    out['802-1x'] = {
      eap: { t: 'as', v: ['peap'] },
      'phase2-auth': s('mschapv2'),
      identity: s(p.identity!),
      'password-flags': u(AGENT_OWNED),
      ...(p.caCert ? { 'ca-cert': { t: 'ay', v: Buffer.from(`file://${p.caCert}\0`, 'utf8') } } : {}),
    };
  }
  return out;
}

// ---- keyfile (for nmcli --offline) --------------------------------------------------------------

const keyfileSection: Record<string, string> = { '802-11-wireless': 'wifi', '802-11-wireless-security': 'wifi-security', '802-1x': '802-1x' };
const kfEscape = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/;/g, '\\;');

export function renderKeyfile(settings: Settings): string {
  const out: string[] = [];
  for (const [setting, keys] of Object.entries(settings)) {
    const peers = Object.values(keys).find((v) => v.t === 'peers');
    out.push(`[${keyfileSection[setting] ?? setting}]`);
    for (const [key, val] of Object.entries(keys)) {
      if (val.t === 's') out.push(`${key}=${kfEscape(val.v)}`);
      else if (val.t === 'b') out.push(`${key}=${val.v}`);
      else if (val.t === 'u') out.push(`${key}=${val.v}`);
      else if (val.t === 'ay') out.push(key === 'ca-cert' ? `${key}=${val.v.toString('utf8').replace(/\0$/, '')}` : `${key}=${[...val.v].map((x) => `${x};`).join('')}`);
      else if (val.t === 'as') out.push(`${key}=${val.v.map((x) => kfEscape(x) + ';').join('')}`);
      else if (val.t === 'addresses') val.v.forEach((a, i) => out.push(`address${i + 1}=${a.address}/${a.prefix}`));
    }
    out.push('');
    if (peers?.t === 'peers') {
      for (const peer of peers.v) {
        out.push(`[wireguard-peer.${peer.publicKey}]`);
        if (peer.endpoint) out.push(`endpoint=${peer.endpoint}`);
        out.push(`allowed-ips=${peer.allowedIps.map((a) => a + ';').join('')}`, '');
      }
    }
  }
  return out.join('\n');
}

/** NetworkManager's own parser checks the profile (no daemon needed); resolves to its normalised keyfile. */
export async function validateOffline(settings: Settings): Promise<{ ok: true; keyfile: string } | { ok: false; problem: string }> {
  const id = (settings.connection!.id as { v: string }).v;
  const r = await runTool('nmcli', ['--offline', 'connection', 'modify', 'connection.id', id], { input: renderKeyfile(settings) });
  if (r.missing) return { ok: false, problem: 'nmcli is not installed.' };
  if (r.code !== 0) return { ok: false, problem: firstLine(r.stderr) || `nmcli exited with ${r.code}` };
  return { ok: true, keyfile: r.stdout };
}

// ---- GVariant text (for gdbus → NetworkManager D-Bus) -------------------------------------------

const gstr = (v: string) => `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
function gvalue(val: SettingValue): string {
  switch (val.t) {
    case 's':
      return `<${gstr(val.v)}>`;
    case 'b':
      return `<${val.v}>`;
    case 'u':
      return `<uint32 ${val.v}>`;
    case 'ay':
      return `<[byte ${[...val.v].map((x) => '0x' + x.toString(16).padStart(2, '0')).join(', ') || '0x00'}]>`;
    case 'as':
      return `<@as [${val.v.map(gstr).join(', ')}]>`;
    case 'addresses':
      return `<@aa{sv} [${val.v.map((a) => `{'address': <${gstr(a.address)}>, 'prefix': <uint32 ${a.prefix}>}`).join(', ')}]>`;
    case 'peers':
      return `<@aa{sv} [${val.v
        .map((p) => `{'public-key': <${gstr(p.publicKey)}>, ${p.endpoint ? `'endpoint': <${gstr(p.endpoint)}>, ` : ''}'allowed-ips': <@as [${p.allowedIps.map(gstr).join(', ')}]>}`)
        .join(', ')}]>`;
  }
}

export function renderGVariant(settings: Settings): string {
  return `{${Object.entries(settings)
    .map(([setting, keys]) => `${gstr(setting)}: {${Object.entries(keys).map(([k, v]) => `${gstr(k)}: ${gvalue(v)}`).join(', ')}}`)
    .join(', ')}}`;
}

// ---- the applier --------------------------------------------------------------------------------

const NM = ['--system', '--dest', 'org.freedesktop.NetworkManager'];
const IN_MEMORY = 0x2; // NM_SETTINGS_ADD_CONNECTION2_FLAG_IN_MEMORY
const BLOCK_AUTOCONNECT = 0x20;

export interface NetworkApplierOptions {
  env?: NodeJS.ProcessEnv;
  user: string;
  secrets: Secrets;
}

export function createNetworkApplier({ env, user, secrets }: NetworkApplierOptions) {
  /** uuid → D-Bus path of the profiles NetworkManager has now, or a reason it cannot be asked. */
  async function existing(): Promise<{ byUuid: Map<string, string>; problem: string | null }> {
    const r = await runTool('nmcli', ['-t', '-f', 'UUID,DBUS-PATH', 'connection', 'show'], { env });
    if (r.missing) return { byUuid: new Map(), problem: 'NetworkManager (nmcli) is not installed, so network profiles cannot be set up.' };
    if (r.code !== 0) {
      const why = firstLine(r.stderr);
      return { byUuid: new Map(), problem: /not running|could not be found|Could not create NMClient/i.test(why) ? 'NetworkManager is not running, so network profiles cannot be set up now.' : `NetworkManager cannot be asked: ${why}` };
    }
    const byUuid = new Map<string, string>();
    for (const line of r.stdout.split('\n')) {
      const [uuid, dbusPath] = line.split(':');
      if (uuid && dbusPath) byUuid.set(uuid, dbusPath);
    }
    return { byUuid, problem: null };
  }

  async function read(profiles: NetworkProfile[]): Promise<{ profiles: NetworkProfileState[]; problem: string | null }> {
    const { byUuid, problem } = await existing();
    const states: NetworkProfileState[] = [];
    for (const p of profiles) {
      let hasSecret: boolean | null = null;
      if (needsSecret(p)) {
        try {
          hasSecret = (await secrets.get(secretAccount(user, p))) !== null;
        } catch {
          hasSecret = null; // the keyring is locked or missing: unknown, shown by apply's reason
        }
      }
      states.push({ name: p.name, uuid: profileUuid(user, p), present: byUuid.has(profileUuid(user, p)), hasSecret });
    }
    return { profiles: states, problem };
  }

  async function apply(profiles: NetworkProfile[], dryRun: boolean): Promise<ApplyItem[]> {
    if (!profiles.length) return [];
    const { byUuid, problem } = await existing();
    const items: ApplyItem[] = [];
    for (const p of profiles) {
      const label = `${p.kind === 'wifi' ? 'Wi-Fi' : 'VPN'} ${p.name}`;
      const uuid = profileUuid(user, p);
      const item = (action: string, status: ApplyItem['status'], reason: string | null = null) => items.push({ area: 'network', item: label, action, status, reason });
      if (problem) {
        item('add as your own profile', 'skipped', problem);
        continue;
      }
      // A profile without its secret would only fail at connect time: say so now.
      if (needsSecret(p)) {
        let secret: string | null;
        try {
          secret = await secrets.get(secretAccount(user, p));
        } catch (err) {
          item('add as your own profile', 'failed', err instanceof TabulaError ? err.message : String(err));
          continue;
        }
        if (secret === null) {
          item('add as your own profile', 'failed', `No ${p.kind === 'wifi' ? 'password' : 'private key'} for "${p.name}" is in your keyring. Enter it in Preferences → Network.`);
          continue;
        }
      }
      const settings = networkSettings(p, user);
      const dbusPath = byUuid.get(uuid);
      const action = dbusPath ? `update your profile ${uuid} in memory` : `add your profile ${uuid} in memory`;
      if (dryRun) {
        item(action, 'planned');
        continue;
      }
      const args = dbusPath
        ? ['call', ...NM, '--object-path', dbusPath, '--method', 'org.freedesktop.NetworkManager.Settings.Connection.Update2', renderGVariant(settings), String(IN_MEMORY), '{}']
        : ['call', ...NM, '--object-path', '/org/freedesktop/NetworkManager/Settings', '--method', 'org.freedesktop.NetworkManager.Settings.AddConnection2', renderGVariant(settings), String(IN_MEMORY | (p.autoconnect ? 0 : BLOCK_AUTOCONNECT)), '{}'];
      const r = await runTool('gdbus', args, { env });
      if (r.code !== 0) {
        const why = firstLine(r.stderr).replace(/^Error: GDBus\.Error:\S+:\s*/, '');
        item(action, 'failed', /not authorized|PermissionDenied/i.test(why) ? `NetworkManager did not allow you to add your own profile: ${why}` : `NetworkManager refused the profile: ${why}`);
        continue;
      }
      item(action, 'applied');
    }
    return items;
  }

  /**
   * Brings a profile up, handing its secret from the keyring to nmcli on stdin (`passwd-file
   * /dev/stdin`): it never appears on a command line or in a file.
   */
  async function connect(p: NetworkProfile): Promise<void> {
    const key = secretKey(p);
    const secret = key ? await secrets.get(secretAccount(user, p)) : null;
    if (key && secret === null) throw new TabulaError('invalid-argument', `No secret for "${p.name}" is in your keyring.`);
    const r = await runTool('nmcli', ['connection', 'up', 'uuid', profileUuid(user, p), ...(key ? ['passwd-file', '/dev/stdin'] : [])], {
      env,
      input: key ? `${key}:${secret}\n` : undefined,
      timeoutMs: 60_000,
    });
    if (r.code !== 0) throw new TabulaError('internal', `"${p.name}" could not connect: ${firstLine(r.stderr) || firstLine(r.stdout)}`, { retryable: true });
  }

  return { read, apply, connect };
}

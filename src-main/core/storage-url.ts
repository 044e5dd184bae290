// Storage is a URL: ssh://user@host[:port]/path, or a plain path / file:// URL (a mounted NAS).
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TabulaError } from '../common/errors';
import { ensurePrivateDir } from './paths';

export type Storage =
  | { kind: 'local'; path: string; display: string }
  | { kind: 'ssh'; user: string | null; host: string; port: number; path: string; display: string };

// Host and user go to ssh as arguments; keep them to characters that cannot be read as options.
const safeName = /^[A-Za-z0-9._-]+$/;
const safeHost = /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])$/;

export function parseStorageUrl(url: string): Storage {
  const invalid = (why: string) => new TabulaError('storage-invalid', `The storage location "${url}" is not usable: ${why}.`);
  if (url.startsWith('ssh://')) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw invalid('it is not a valid ssh:// URL');
    }
    const user = u.username ? decodeURIComponent(u.username) : null;
    if (user !== null && !safeName.test(user)) throw invalid('the user name has unexpected characters');
    if (!safeHost.test(u.hostname)) throw invalid('the host name has unexpected characters');
    if (u.password) throw invalid('passwords do not belong in the URL; use an ssh key');
    const p = decodeURIComponent(u.pathname);
    if (!p || p === '/') throw invalid('it names no folder on the server');
    const port = u.port ? Number(u.port) : 22;
    return { kind: 'ssh', user, host: u.hostname, port, path: path.posix.normalize(p), display: url };
  }
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(url)?.[1];
  if (scheme && scheme.toLowerCase() !== 'file') {
    throw invalid(`${scheme}: is not supported; use ssh://user@host[:port]/path (any sshd or NAS with rsync), file:///path or an absolute path`);
  }
  const local = url.startsWith('file://') ? decodeURIComponent(new URL(url).pathname) : url;
  if (!path.isAbsolute(local)) throw invalid('a folder must be given as an absolute path or a URL');
  return { kind: 'local', path: path.normalize(local), display: local };
}

/** The rsync destination for a folder inside the storage (always with a trailing slash). */
export function rsyncTarget(storage: Storage, sub = ''): string {
  const p = path.posix.join(storage.path, sub) + '/';
  if (storage.kind === 'local') return p;
  return `${storage.user ? storage.user + '@' : ''}${storage.host}:${p}`;
}

/** One ssh connection shared by every ssh and rsync of a run (ControlMaster), and how long it stays open unused. */
export interface SharedConnection {
  socket: string;
  persistSeconds: number;
}

// A Unix socket's path holds at most 107 bytes, and ssh first binds "<path>.<16 random characters>"
// before renaming it into place: 17 more. A long $XDG_RUNTIME_DIR (or a test's temporary folder) would
// otherwise make every ssh fail with "path too long for Unix domain socket".
const SOCKET_PATH_MAX = 107 - 17;

/**
 * Where the shared connection to this storage lives: a short name (a hash of user, host and port, as
 * ssh's %C is of those and the local host) in the runtime folder, or in the private /tmp/tabula-UID
 * when the runtime folder's path is too long for a socket. Null when neither fits or is safe: ssh
 * then connects anew every time, which is slower but works.
 */
export function sharedConnection(storage: Storage, runtimeDir: string, persistSeconds: number): SharedConnection | null {
  if (storage.kind !== 'ssh') return null;
  const name = `ssh-${crypto.createHash('sha256').update(`${storage.user ?? ''}@${storage.host}:${storage.port}`).digest('hex').slice(0, 16)}`;
  const fits = (dir: string) => Buffer.byteLength(path.join(dir, name)) <= SOCKET_PATH_MAX;
  if (fits(runtimeDir)) return { socket: path.join(runtimeDir, name), persistSeconds };
  const fallback = path.join(os.tmpdir(), `tabula-${os.userInfo().uid}`); // as the runtime folder's own fallback (paths.ts)
  try {
    ensurePrivateDir(fallback); // made 0700 and ours, or refused (another user may have put it there first)
    return { socket: path.join(fallback, name), persistSeconds };
  } catch {
    return null;
  }
}

/** ssh's arguments up to (not including) the host; the same for rsync's -e and for direct ssh calls. */
export function sshArgs(storage: Storage, options: string[], connectTimeoutSeconds: number, shared?: SharedConnection | null): string[] {
  if (storage.kind !== 'ssh') throw new Error('sshArgs needs an ssh storage');
  return [
    '-p', String(storage.port),
    '-o', 'BatchMode=yes',
    '-o', `ConnectTimeout=${connectTimeoutSeconds}`,
    '-o', 'ServerAliveInterval=15',
    // One connection for listing and every transfer of a run, and for the agent from one run to the
    // next (0.3 s saved per connection).
    ...(shared ? ['-o', 'ControlMaster=auto', '-o', `ControlPath=${shared.socket}`, '-o', `ControlPersist=${shared.persistSeconds}`] : []),
    ...options,
    ...cipherPreference(storage, options),
  ];
}

const preferred = new Map<string, string[]>();
/**
 * AES-GCM first where the processor has AES instructions: ssh's default, ChaCha20-Poly1305, costs ssh and
 * sshd a third more processor time, and a first sync of 100,000 files over ssh took ~15% longer with it
 * (`rsync -a` alike: 15.3–16.9 s against 11.5–13.4 s here). Both are in OpenSSH's default set; the server
 * still decides (one without it is answered with the rest of the list). Only when the ssh configuration
 * (the user's, the system's, the storage's options) leaves the ciphers at their default: a fleet's choice
 * stands. Asked of `ssh -G` (reads the configuration, connects nowhere) once per storage.
 */
function cipherPreference(storage: Storage & { kind: 'ssh' }, options: string[]): string[] {
  const key = [storage.host, storage.port, ...options].join('\0');
  let got = preferred.get(key);
  if (!got) {
    const ciphers = (args: string[]) => /^ciphers (\S+)$/m.exec(spawnSync('ssh', ['-G', ...args, '-p', String(storage.port), sshDestination(storage)], { encoding: 'utf8', timeout: 5000 }).stdout ?? '')?.[1];
    const effective = hasAes() ? ciphers(options) : undefined;
    got = effective && effective === ciphers(['-F', '/dev/null']) && effective.split(',').includes(AES_GCM) ? ['-o', `Ciphers=^${AES_GCM}`] : [];
    preferred.set(key, got);
  }
  return got;
}
const AES_GCM = 'aes128-gcm@openssh.com';

/** The processor's AES instructions (x86 "flags", arm64 "Features"). */
function hasAes(): boolean {
  try {
    return /^(flags|Features)\s*:.*\baes\b/m.test(fs.readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    return false;
  }
}

/**
 * Ends the shared connection now (the agent stops, or the laptop slept and its TCP connection is likely
 * dead); `stop`: it takes no new sessions (the next ssh connects anew) and ends once those running end.
 */
export function closeSharedConnection(storage: Storage, shared: SharedConnection, how: 'exit' | 'stop' = 'exit'): Promise<void> {
  if (storage.kind !== 'ssh') return Promise.resolve();
  return new Promise((resolve) => {
    const child = spawn('ssh', ['-o', `ControlPath=${shared.socket}`, '-O', how, sshDestination(storage)], { stdio: 'ignore' });
    child.on('error', () => resolve());
    child.on('close', () => resolve());
  });
}

export function sshDestination(storage: Storage & { kind: 'ssh' }): string {
  return storage.user ? `${storage.user}@${storage.host}` : storage.host;
}

/**
 * The ssh command rsync runs (its -e). rsync splits it on spaces and honours quotes, so every
 * argument is single-quoted; a quote inside an option is refused rather than escaped.
 */
export function sshCommand(storage: Storage, options: string[], connectTimeoutSeconds: number, shared?: SharedConnection | null): string {
  const args = ['ssh', ...sshArgs(storage, options, connectTimeoutSeconds, shared)];
  for (const a of args) {
    if (a.includes("'")) throw new TabulaError('storage-invalid', `The ssh option ${a} contains a quote, which Tabula does not pass on.`);
  }
  return args.map((a) => (/^[A-Za-z0-9_.,:=/@%+-]+$/.test(a) ? a : `'${a}'`)).join(' ');
}

/** Quotes one argument for a POSIX shell (the remote side of ssh always runs one). */
export function shellQuote(arg: string): string {
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

// ssh options from the config, read the way ssh's getopt reads them. Only what says how to reach
// and trust the storage is allowed; anything that can run a command (ProxyCommand, LocalCommand,
// PermitLocalCommand, Match exec, KnownHostsCommand), read another config (-F FILE, Include) or
// forward ports is refused, whatever its spelling: `-oX=Y`, `-o X=Y`, `-o "X Y"`, any case,
// grouped flags (`-4oProxyCommand=…`), or an option hidden in the value of another.
const sshFlagsAlone = new Set(['4', '6', 'C', 'q']);
const sshFlagsWithValue = new Set(['i', 'p', 'o', 'F']);
const sshAllowedKeys = new Set(
  [
    'IdentityFile', 'IdentitiesOnly', 'CertificateFile', 'Port', 'UserKnownHostsFile', 'GlobalKnownHostsFile',
    'StrictHostKeyChecking', 'HostKeyAlias', 'HostKeyAlgorithms', 'CheckHostIP', 'UpdateHostKeys', 'VerifyHostKeyDNS',
    'HashKnownHosts', 'FingerprintHash', 'ConnectTimeout', 'ConnectionAttempts', 'ServerAliveInterval',
    'ServerAliveCountMax', 'TCPKeepAlive', 'Compression', 'AddressFamily', 'IPQoS', 'RekeyLimit', 'BatchMode',
    'LogLevel', 'PreferredAuthentications', 'PubkeyAuthentication', 'PubkeyAcceptedAlgorithms',
    'PubkeyAcceptedKeyTypes', 'KexAlgorithms', 'Ciphers', 'MACs',
  ].map((k) => k.toLowerCase()),
);
// A value is one word of plain characters: no whitespace, quotes, control characters or shell syntax.
const sshValue = /^[A-Za-z0-9_.,:@%~/+=^-]{1,512}$/;

function sshOptionProblem(flag: string, value: string): string | null {
  if (!sshValue.test(value) || value.startsWith('-')) return `the value ${JSON.stringify(value.slice(0, 80))} of -${flag} is not one plain word`;
  if (flag === 'p') return /^\d{1,5}$/.test(value) && Number(value) >= 1 && Number(value) <= 65535 ? null : '-p needs a port number';
  // -F only to say "no config file": another file could hold any option.
  if (flag === 'F') return value === '/dev/null' || value === 'none' ? null : '-F may only be /dev/null or none';
  if (flag === 'o') {
    const m = /^([A-Za-z]+)=(.+)$/.exec(value);
    if (!m) return `-o ${value.slice(0, 80)} is not Key=Value`;
    if (!sshAllowedKeys.has(m[1]!.toLowerCase())) return `-o ${m[1]} is not allowed`;
    if (m[2]!.includes('=') && /^[A-Za-z]+=/.test(m[2]!)) return `-o ${m[1]} carries another option in its value`;
  }
  return null;
}

/**
 * Why these ssh options are refused (null: they are fine). `-o "Key Value"` (ssh's other spelling)
 * is read as Key=Value; everything else that is not in the allow-list is refused by name.
 */
export function checkSshOptions(options: string[]): string | null {
  for (let i = 0; i < options.length; i++) {
    const arg = options[i]!;
    if (!arg.startsWith('-') || arg === '-' || arg.startsWith('--')) return `"${arg.slice(0, 80)}" is not an ssh option (ssh would take it as the host or a command)`;
    for (let j = 1; j < arg.length; j++) {
      const flag = arg[j]!;
      if (sshFlagsAlone.has(flag)) continue;
      if (!sshFlagsWithValue.has(flag)) return `the ssh option -${flag} is not allowed (allowed: -i, -p, -o with ${[...sshAllowedKeys].length} known keys, -F /dev/null, -4, -6, -C, -q)`;
      let value = arg.slice(j + 1);
      if (!value) {
        if (i + 1 >= options.length) return `-${flag} needs a value`;
        value = options[++i]!;
      }
      if (flag === 'o') value = value.replace(/^([A-Za-z]+) (?=\S)/, '$1=');
      const problem = sshOptionProblem(flag, value);
      if (problem) return problem;
      break; // the rest of this argument was the value
    }
  }
  return null;
}

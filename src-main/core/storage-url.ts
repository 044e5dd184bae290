// Storage is a URL: ssh://user@host[:port]/path, or a plain path / file:// URL (a mounted NAS).
import path from 'node:path';
import { TabulaError } from '../common/errors';

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

/** ssh's arguments up to (not including) the host; the same for rsync's -e and for direct ssh calls. */
export function sshArgs(storage: Storage, options: string[], connectTimeoutSeconds: number, controlDir?: string): string[] {
  if (storage.kind !== 'ssh') throw new Error('sshArgs needs an ssh storage');
  return [
    '-p', String(storage.port),
    '-o', 'BatchMode=yes',
    '-o', `ConnectTimeout=${connectTimeoutSeconds}`,
    '-o', 'ServerAliveInterval=15',
    // One connection for listing and every transfer of a run (0.3 s saved per connection).
    ...(controlDir ? ['-o', 'ControlMaster=auto', '-o', `ControlPath=${controlDir}/ssh-%C`, '-o', 'ControlPersist=30'] : []),
    ...options,
  ];
}

export function sshDestination(storage: Storage & { kind: 'ssh' }): string {
  return storage.user ? `${storage.user}@${storage.host}` : storage.host;
}

/**
 * The ssh command rsync runs (its -e). rsync splits it on spaces and honours quotes, so every
 * argument is single-quoted; a quote inside an option is refused rather than escaped.
 */
export function sshCommand(storage: Storage, options: string[], connectTimeoutSeconds: number, controlDir?: string): string {
  const args = ['ssh', ...sshArgs(storage, options, connectTimeoutSeconds, controlDir)];
  for (const a of args) {
    if (a.includes("'")) throw new TabulaError('storage-invalid', `The ssh option ${a} contains a quote, which Tabula does not pass on.`);
  }
  return args.map((a) => (/^[A-Za-z0-9_.,:=/@%+-]+$/.test(a) ? a : `'${a}'`)).join(' ');
}

/** Quotes one argument for a POSIX shell (the remote side of ssh always runs one). */
export function shellQuote(arg: string): string {
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

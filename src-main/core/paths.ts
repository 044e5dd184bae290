// Where Tabula reads and writes, from the XDG variables (the stateless split: prefs roam with /home,
// agent state survives reboots in ~/.local/state, runtime bits live in $XDG_RUNTIME_DIR).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TabulaError } from '../common/errors';

export interface Paths {
  home: string;
  /** Root of the system tree (tests point it at a temp folder). */
  root: string;
  systemDefaultsFile: string;
  adminConfigFile: string;
  userConfigDir: string;
  userConfigFile: string;
  /** Extra config file on top of all layers (TABULA_CONFIG). */
  extraConfigFile: string | null;
  stateDir: string;
  dataDir: string;
  runtimeDir: string;
  /** True when runtimeDir is inside $XDG_RUNTIME_DIR, false for the /tmp/tabula-UID fallback. */
  runtimeFromXdg: boolean;
  osReleaseFiles: string[];
}

export function resolvePaths(env: NodeJS.ProcessEnv = process.env): Paths {
  const home = env.HOME || os.homedir();
  const xdg = (name: string, fallback: string) => {
    const v = env[name];
    return v && path.isAbsolute(v) ? v : path.join(home, fallback);
  };
  const root = env.TABULA_ROOT || '/';
  const userConfigDir = path.join(xdg('XDG_CONFIG_HOME', '.config'), 'tabula');
  const runtimeFromXdg = !!env.XDG_RUNTIME_DIR && path.isAbsolute(env.XDG_RUNTIME_DIR);
  const runtimeBase = runtimeFromXdg ? env.XDG_RUNTIME_DIR! : path.join(os.tmpdir(), `tabula-${os.userInfo().uid}`);
  return {
    home,
    root,
    systemDefaultsFile: path.join(root, 'usr/share/defaults/tabula/config.json'),
    adminConfigFile: path.join(root, 'etc/tabula/config.json'),
    userConfigDir,
    userConfigFile: path.join(userConfigDir, 'config.json'),
    extraConfigFile: env.TABULA_CONFIG || null,
    stateDir: path.join(xdg('XDG_STATE_HOME', '.local/state'), 'tabula'),
    dataDir: path.join(xdg('XDG_DATA_HOME', '.local/share'), 'tabula'),
    runtimeDir: path.join(runtimeBase, 'tabula'),
    runtimeFromXdg,
    osReleaseFiles: env.TABULA_OS_RELEASE ? [env.TABULA_OS_RELEASE] : [path.join(root, 'etc/os-release'), path.join(root, 'usr/lib/os-release')],
  };
}

/** `~/x` for paths inside the home, for messages a person reads. */
export function displayPath(p: string, home: string): string {
  if (p === home) return '~';
  return p.startsWith(home + '/') ? '~/' + p.slice(home.length + 1) : p;
}

/**
 * Makes sure `dir` is a folder only this user can use: a real folder (checked with lstat, so a
 * symlink is refused, not followed), owned by the user, mode 0700. A missing one is created 0700.
 * An existing one of ours with looser bits is tightened when `repair` says so: 'all' (state in the
 * home, where older versions left 0755) or 'read' (only read/search bits; a folder others could
 * write to may already hold their files, so it is refused). Anything else throws a message saying
 * what is wrong and how to fix it: Tabula refuses to start rather than use it.
 */
export function ensurePrivateDir(dir: string, repair: 'all' | 'read' | 'none' = 'read'): void {
  const uid = process.getuid!();
  let st: fs.Stats;
  try {
    st = fs.lstatSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw unsafeDir(dir, `it cannot be checked (${(err as NodeJS.ErrnoException).code})`);
    fs.mkdirSync(path.dirname(dir), { recursive: true, mode: 0o700 });
    try {
      fs.mkdirSync(dir, { mode: 0o700 }); // not recursive: it fails rather than accept what someone put here first
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    st = fs.lstatSync(dir);
  }
  if (st.isSymbolicLink()) throw unsafeDir(dir, 'it is a symbolic link');
  if (!st.isDirectory()) throw unsafeDir(dir, 'it is not a folder');
  if (st.uid !== uid) throw unsafeDir(dir, `it belongs to another user (uid ${st.uid}), who could read or replace what Tabula keeps there`);
  const loose = st.mode & 0o077;
  if (!loose) return;
  if (repair === 'all' || (repair === 'read' && !(loose & 0o022))) {
    fs.chmodSync(dir, 0o700);
    return;
  }
  throw unsafeDir(dir, `other users can ${loose & 0o022 ? 'write to' : 'read'} it (mode ${(st.mode & 0o777).toString(8)})`);
}

function unsafeDir(dir: string, why: string): TabulaError {
  return new TabulaError('unsafe-folder', `Tabula will not use ${dir}: ${why}. Remove or fix it (it must be your own folder, mode 700), then start Tabula again.`);
}

/**
 * The runtime folder (token, endpoint, ssh connection sockets), verified with its base: the
 * session's $XDG_RUNTIME_DIR must already be the user's own 0700 folder (it is never changed here);
 * without one, `/tmp/tabula-UID` is created or must already be the user's own.
 */
export function ensureRuntimeDir(paths: Paths): string {
  const base = path.dirname(paths.runtimeDir);
  if (paths.runtimeFromXdg) ensurePrivateDir(base, 'none');
  else ensurePrivateDir(base, 'read');
  ensurePrivateDir(paths.runtimeDir, 'read');
  return paths.runtimeDir;
}

/**
 * Agent state names the user's files (sync archive, journal, history, conflicts): folder 0700 and
 * files 0600, also when an older version created them looser.
 */
export function ensureStateDir(paths: Paths): void {
  ensurePrivateDir(paths.stateDir, 'all');
  for (const e of fs.readdirSync(paths.stateDir, { withFileTypes: true })) {
    const p = path.join(paths.stateDir, e.name);
    if (e.isDirectory()) fs.chmodSync(p, 0o700);
    else if (e.isFile() && fs.lstatSync(p).mode & 0o077) fs.chmodSync(p, 0o600);
  }
}

/**
 * The first folder on the way from `base` (not included) down to `target` (included) that is a
 * symbolic link, or null. A file the home sync can reach must not be read or written through a
 * link that arrived with it (O_NOFOLLOW guards the last component only).
 */
export function symlinkOnTheWay(base: string, target: string): string | null {
  const rel = path.relative(base, target);
  if (rel.startsWith('..') || path.isAbsolute(rel)) return null;
  let p = base;
  for (const part of rel.split(path.sep).filter(Boolean)) {
    p = path.join(p, part);
    try {
      if (fs.lstatSync(p).isSymbolicLink()) return p;
    } catch {
      return null; // missing: nothing further down exists either
    }
  }
  return null;
}

/** The agent's socket for the CLI and the tray (agent-socket.ts serves it). */
export const agentSocketPath = (paths: Paths) => path.join(paths.runtimeDir, 'agent.sock');

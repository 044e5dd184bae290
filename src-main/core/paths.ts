// Where Tabula reads and writes, from the XDG variables (the stateless split: prefs roam with /home,
// agent state survives reboots in ~/.local/state, runtime bits live in $XDG_RUNTIME_DIR).
import os from 'node:os';
import path from 'node:path';

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
  const runtimeBase = env.XDG_RUNTIME_DIR && path.isAbsolute(env.XDG_RUNTIME_DIR) ? env.XDG_RUNTIME_DIR : path.join(os.tmpdir(), `tabula-${os.userInfo().uid}`);
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
    osReleaseFiles: env.TABULA_OS_RELEASE ? [env.TABULA_OS_RELEASE] : [path.join(root, 'etc/os-release'), path.join(root, 'usr/lib/os-release')],
  };
}

/** `~/x` for paths inside the home, for messages a person reads. */
export function displayPath(p: string, home: string): string {
  if (p === home) return '~';
  return p.startsWith(home + '/') ? '~/' + p.slice(home.length + 1) : p;
}

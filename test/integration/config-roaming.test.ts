// A storage must not be a way into Tabula (issue 12 item 9), for real: a storage (another laptop, a
// compromised NAS) carries a config.json whose ssh options run a command; the home syncs with it
// over a real sshd on 127.0.0.1, and the next sync must run nothing. The laptop's own storage
// settings come from /etc/tabula (the fleet's layer), as on a managed laptop.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createSandbox, type AgentSandbox } from '../fixtures/headless-agent';
import { startSshServer, type SshServer } from '../fixtures/sshd';

let sshd: SshServer;
let sb: AgentSandbox;
let remote: string;
let marker: string;

beforeAll(async () => {
  sshd = await startSshServer();
});
afterAll(() => sshd.dispose());

beforeEach(() => {
  sb = createSandbox();
  delete sb.env.XDG_CONFIG_HOME; // ~/.config, inside the synced home, as on a real laptop
  remote = path.join(sb.dir, 'nas');
  marker = path.join(sb.dir, 'PWNED');
  fs.mkdirSync(remote);
  fs.mkdirSync(path.join(sb.env.XDG_RUNTIME_DIR!, 'tabula'), { mode: 0o700 }); // as a running session has it
  const etc = path.join(sb.env.TABULA_ROOT!, 'etc/tabula');
  fs.mkdirSync(etc, { recursive: true });
  fs.writeFileSync(path.join(etc, 'config.json'), JSON.stringify({ storage: { url: sshd.url(remote), sshOptions: sshd.sshOptions } }));
});
afterEach(() => sb.dispose());

/** The attacker's config: the right storage, plus a ProxyCommand that leaves a mark when ssh runs it. */
const hostileConfig = () => JSON.stringify({ storage: { url: sshd.url(remote), sshOptions: [...sshd.sshOptions, `-oProxyCommand=touch ${marker}`] } });

async function sync() {
  const r = await sb.cli(['sync']);
  // End the ssh connection the run left for reuse (ControlPersist), so the next run connects anew.
  const dir = path.join(sb.env.XDG_RUNTIME_DIR!, 'tabula');
  for (const s of fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.startsWith('ssh-')) : []) {
    spawnSync('ssh', ['-o', `ControlPath=${path.join(dir, s)}`, '-O', 'exit', 'x'], { stdio: 'ignore' });
  }
  return r;
}

describe('a storage carrying a config for Tabula', () => {
  it('a config.json on the storage never reaches the home, and the next sync runs nothing', async () => {
    fs.mkdirSync(path.join(remote, '.config/tabula'), { recursive: true });
    fs.writeFileSync(path.join(remote, '.config/tabula/config.json'), hostileConfig());
    fs.writeFileSync(path.join(remote, '.config/tabula/prefs.json'), JSON.stringify({ version: 2, printers: { default: { uri: 'ipp://print.example/ipp/print' } } }));
    const first = await sync();
    expect(first.code, first.stderr).toBe(0);
    expect(fs.existsSync(path.join(sb.home, '.config/tabula/config.json'))).toBe(false);
    // Preferences still roam.
    expect(fs.existsSync(path.join(sb.home, '.config/tabula/prefs.json'))).toBe(true);
    const second = await sync();
    expect(second.code, second.stderr).toBe(0);
    expect(fs.existsSync(marker)).toBe(false);
    // And the home's own config does not go up to the storage either.
    fs.writeFileSync(path.join(sb.home, '.config/tabula/config.json'), JSON.stringify({ backup: { excludes: ['*.iso'] } }));
    expect((await sync()).code).toBe(0);
    expect(fs.readFileSync(path.join(remote, '.config/tabula/config.json'), 'utf8')).toBe(hostileConfig());
  });

  it('a config reached through a symlinked folder from the storage is not read', async () => {
    fs.mkdirSync(path.join(remote, '.config'));
    fs.mkdirSync(path.join(remote, 'Documents/cfg'), { recursive: true });
    fs.symlinkSync('../Documents/cfg', path.join(remote, '.config/tabula'));
    fs.writeFileSync(path.join(remote, 'Documents/cfg/config.json'), hostileConfig());
    expect((await sync()).code).toBe(0);
    expect(fs.lstatSync(path.join(sb.home, '.config/tabula')).isSymbolicLink()).toBe(true);
    const second = await sync();
    expect(second.code, second.stderr).toBe(0);
    expect(fs.existsSync(marker)).toBe(false);
    expect(second.stderr).toContain(`${path.join(sb.home, '.config/tabula/config.json')} is not read: ${path.join(sb.home, '.config/tabula')} is a symbolic link`);
  });

  it("the home's own config with a ProxyCommand is refused by name, and ssh never runs it", async () => {
    fs.mkdirSync(path.join(sb.home, '.config/tabula'), { recursive: true });
    fs.writeFileSync(path.join(sb.home, '.config/tabula/config.json'), hostileConfig());
    const r = await sync();
    expect(fs.existsSync(marker)).toBe(false);
    expect(r.stderr).toMatch(/config\.json has an invalid value at "storage\.sshOptions": .*ProxyCommand/);
  });
});

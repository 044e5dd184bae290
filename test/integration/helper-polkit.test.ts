// Who may make root do what, asked of a real polkitd (on a private system bus, with Tabula's shipped
// policy as its only actions) for a real process of the user `nobody` without a login session: what
// pkexec asks for `tabula-helper <verb>`. A check (root contacting the fleet server) must not be
// granted to any session, and `status --check` must not slip a check under the `status` rule.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../fixtures/headless-agent';

let dir: string;
let busPid = 0;
let polkit: ChildProcess;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-polkit-'));
  fs.chmodSync(dir, 0o755);
  const actions = path.join(dir, 'actions');
  fs.mkdirSync(actions, { mode: 0o755 });
  fs.copyFileSync(path.join(repoRoot, 'assets/polkit/org.tabula.helper.policy'), path.join(actions, 'org.tabula.helper.policy'));
  fs.chmodSync(path.join(actions, 'org.tabula.helper.policy'), 0o644);
  const socket = path.join(dir, 'system_bus');
  fs.writeFileSync(
    path.join(dir, 'bus.conf'),
    `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>system</type><listen>unix:path=${socket}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/><allow send_type="method_call"/><allow own="*"/></policy></busconfig>
`,
  );
  const bus = spawnSync('dbus-daemon', [`--config-file=${path.join(dir, 'bus.conf')}`, '--fork', '--print-pid=1'], { encoding: 'utf8' });
  if (bus.status !== 0) throw new Error(`dbus-daemon did not start: ${bus.stderr}`);
  busPid = Number(bus.stdout.trim());
  env = { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${socket}`, LC_ALL: 'C' };
  // polkitd reads actions only from /usr/share/polkit-1/actions: shown ours there, in its own mount namespace.
  polkit = spawn('unshare', ['-m', 'sh', '-c', 'mount --make-rprivate / && mount --bind "$ACTIONS" /usr/share/polkit-1/actions && exec /usr/lib/polkit-1/polkitd --no-debug'], {
    env: { ...env, ACTIONS: actions },
    stdio: 'ignore',
  });
  const deadline = Date.now() + 15_000;
  while (spawnSync('pkaction', ['--action-id', 'org.tabula.helper.status'], { env }).status !== 0) {
    if (Date.now() > deadline) throw new Error('polkitd did not come up on the private bus');
    await new Promise((r) => setTimeout(r, 200));
  }
});
afterAll(() => {
  polkit?.kill('SIGTERM');
  if (busPid) process.kill(busPid, 'SIGTERM');
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Asks polkitd, as pkexec would, whether a process of `nobody` (no session) may run this action. */
function nobodyMay(action: string): 'yes' | 'auth' | 'no' {
  const r = spawnSync('runuser', ['-u', 'nobody', '--', 'sh', '-c', 'exec pkcheck --action-id "$1" --process $$', 'sh', action], { env, encoding: 'utf8' });
  if (r.status === 0) return 'yes';
  if (/authentication|challenge/i.test(r.stdout + r.stderr) || r.status === 2) return 'auth';
  return 'no';
}

/** The action pkexec picks for `tabula-helper ...args`: the one whose argv1 annotation matches. */
function actionFor(args: string[]): string | null {
  const r = spawnSync('pkaction', ['--verbose'], { env, encoding: 'utf8' });
  for (const block of r.stdout.split(/\n(?=org\.)/)) {
    const id = /^(org\.tabula\.helper\.\S+):/.exec(block)?.[1];
    const argv1 = /org\.freedesktop\.policykit\.exec\.argv1 -> (\S+)/.exec(block)?.[1];
    if (id && argv1 === args[0]) return id;
  }
  return null;
}

describe('polkit rules for tabula-helper', () => {
  it('reading the local state is open to anyone', () => {
    expect(nobodyMay('org.tabula.helper.status')).toBe('yes');
  });

  it('contacting the fleet server (check), installing, going back and resetting need the active session or an administrator', () => {
    expect(actionFor(['check'])).toBe('org.tabula.helper.check');
    expect(actionFor(['pull'])).toBe('org.tabula.helper.pull');
    for (const verb of ['check', 'stage', 'pull', 'rollback', 'reimage']) expect(nobodyMay(`org.tabula.helper.${verb}`), verb).toBe('auth');
  });

  it('`status --check` cannot ride on the status rule: the helper refuses it before doing anything', () => {
    expect(actionFor(['status', '--check'])).toBe('org.tabula.helper.status');
    const r = spawnSync(process.execPath, [path.join(repoRoot, 'build/main/helper.js'), 'status', '--check'], { encoding: 'utf8', env: { ...process.env, TABULA_ROOT: dir } });
    expect(r.status).toBe(64);
    expect(JSON.parse(r.stdout.trim()).error.code).toBe('invalid-argument');
  });

  it('a reimage without a signed fleet command needs an administrator even in the active session', () => {
    const policy = fs.readFileSync(path.join(repoRoot, 'assets/polkit/org.tabula.helper.policy'), 'utf8');
    const reimage = /<action id="org\.tabula\.helper\.reimage">[\s\S]*?<\/action>/.exec(policy)![0];
    expect(reimage).toContain('<allow_active>auth_admin_keep</allow_active>');
  });

  it('reimage-signed may be asked by anyone: the helper itself refuses it without a valid signed command (helper-signed-reimage.test.ts)', () => {
    expect(actionFor(['reimage-signed'])).toBe('org.tabula.helper.reimage-signed');
    expect(nobodyMay('org.tabula.helper.reimage-signed')).toBe('yes');
    const r = spawnSync(process.execPath, [path.join(repoRoot, 'build/main/helper.js'), 'reimage-signed'], { encoding: 'utf8', input: '{"command":"e30=","signature":"AAAA"}', env: { ...process.env, TABULA_ROOT: dir } });
    expect(r.status).toBe(1);
    expect(JSON.parse(r.stdout.trim()).error).toMatchObject({ code: 'command-rejected' });
  });

  it('going back to an older image needs an administrator even in the active session', () => {
    const policy = fs.readFileSync(path.join(repoRoot, 'assets/polkit/org.tabula.helper.policy'), 'utf8');
    const rollback = /<action id="org\.tabula\.helper\.rollback">[\s\S]*?<\/action>/.exec(policy)![0];
    expect(rollback).toContain('<allow_active>auth_admin_keep</allow_active>');
    const check = /<action id="org\.tabula\.helper\.check">[\s\S]*?<\/action>/.exec(policy)![0];
    expect(check).toContain('<allow_active>yes</allow_active>');
  });
});

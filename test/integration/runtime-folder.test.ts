// Another local user against the runtime folder (issue 12 item 6) and agent state (item 8), for real:
// the victim is `nobody`, the attacker `daemon`, both through setpriv, with their files in a
// sticky, world-writable temp folder standing in for /tmp (TMPDIR), as real processes.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSandbox, repoRoot, type AgentSandbox } from '../fixtures/headless-agent';

const tabula = path.join(repoRoot, 'bin', 'tabula.js');
const VICTIM = { user: 'nobody', group: 'nogroup', uid: 65534 };
const ATTACKER = { user: 'daemon', group: 'daemon', uid: 1 };
type User = typeof VICTIM;

let sb: AgentSandbox;
let shared: string; // the stand-in for /tmp: mode 1777
let env: NodeJS.ProcessEnv; // the victim's session: no XDG_RUNTIME_DIR, TMPDIR=shared

const setpriv = (u: User) => ['--reuid=' + u.user, '--regid=' + u.group, '--clear-groups'];
/** Async, so the attacker's listener in this process can answer while the victim's CLI runs. */
function run(u: User, cmd: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; timeout?: number } = {}) {
  const child = spawn('setpriv', [...setpriv(u), cmd, ...args], { env: { ...(opts.env ?? env), USER: u.user, LC_ALL: 'C' }, cwd: '/' });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c));
  child.stderr.on('data', (c: Buffer) => (stderr += c));
  child.stdin.on('error', () => undefined); // a command that exits before reading its input (EPIPE)
  child.stdin.end(opts.input ?? '');
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeout ?? 30_000);
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    }),
  );
}
const tabulaAs = (u: User, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; timeout?: number } = {}) => run(u, process.execPath, [tabula, ...args], opts);
const fallbackBase = () => path.join(shared, `tabula-${VICTIM.uid}`);

/** `tabula --headless` as the victim; resolves with the child once it printed its address. */
async function startAgentAs(u: User) {
  const child = spawn('setpriv', [...setpriv(u), process.execPath, tabula, '--headless', '--port', '0'], { env: { ...env, USER: u.user }, cwd: '/', stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c));
  child.stderr.on('data', (c: Buffer) => (out += c));
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no address within 20 s:\n${out}`)), 20_000);
    child.stdout.on('data', () => /^Open http/m.test(out) && (clearTimeout(t), resolve()));
    child.on('close', () => (clearTimeout(t), reject(new Error(`exited:\n${out}`))));
  });
  const stop = () => new Promise<void>((resolve) => (child.exitCode !== null ? resolve() : (child.on('close', () => resolve()), child.kill('SIGTERM'))));
  return { child, output: () => out, stop };
}

/** A listener on 127.0.0.1 that plays the agent and records everything sent to it. */
async function attackerServer() {
  const received: string[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c));
    req.on('end', () => {
      received.push(`${req.method} ${req.url} ${req.headers.authorization ?? ''} ${body}`);
      const profile = { name: 'Home', kind: 'wifi', ssid: 'Home', security: 'wpa-psk' };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok: true, value: { effective: { network: { profiles: [profile] } }, image: {}, backup: {} } }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, received, close: () => new Promise<void>((r) => server.close(() => r())) };
}

beforeEach(() => {
  sb = createSandbox();
  spawnSync('chown', ['-R', `${VICTIM.user}:${VICTIM.group}`, sb.dir]);
  shared = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-sharedtmp-'));
  fs.chmodSync(shared, 0o1777);
  env = { ...sb.env, TMPDIR: shared };
  delete env.XDG_RUNTIME_DIR;
});
afterEach(async () => {
  await sb.dispose();
  fs.rmSync(shared, { recursive: true, force: true });
});

describe('runtime folder without XDG_RUNTIME_DIR: another user got there first', () => {
  it("refuses to start in another user's /tmp/tabula-UID, and writes no token there", async () => {
    expect((await run(ATTACKER, 'mkdir', ['-m', '777', fallbackBase()])).code).toBe(0);
    const r = await tabulaAs(VICTIM, ['--headless', '--port', '0'], { timeout: 20_000 });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`Tabula will not use ${fallbackBase()}: it belongs to another user (uid ${ATTACKER.uid})`);
    expect(spawnSync('find', [fallbackBase(), '-type', 'f'], { encoding: 'utf8' }).stdout).toBe('');
  });

  it('refuses a symlink planted at /tmp/tabula-UID', async () => {
    const lure = path.join(shared, 'lure');
    expect((await run(ATTACKER, 'mkdir', ['-m', '777', lure])).code).toBe(0);
    expect((await run(ATTACKER, 'ln', ['-s', lure, fallbackBase()])).code).toBe(0);
    const r = await tabulaAs(VICTIM, ['--headless', '--port', '0'], { timeout: 20_000 });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`Tabula will not use ${fallbackBase()}: it is a symbolic link`);
    expect(fs.readdirSync(lure)).toEqual([]);
  });

  it('a planted endpoint never receives the token or the Wi-Fi password from `tabula prefs secret`', async () => {
    const evil = await attackerServer();
    try {
      const dir = path.join(fallbackBase(), 'tabula');
      expect((await run(ATTACKER, 'mkdir', ['-m', '777', '-p', dir])).code).toBe(0);
      expect((await run(ATTACKER, 'sh', ['-c', `echo ${evil.url} > ${dir}/endpoint; echo planted > ${dir}/token; chmod 666 ${dir}/*`])).code).toBe(0);
      const r = await tabulaAs(VICTIM, ['prefs', 'secret', 'Home'], { input: 'hunter2-wifi-password\n' });
      expect(evil.received).toEqual([]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`Tabula will not use ${fallbackBase()}: it belongs to another user`);
    } finally {
      await evil.close();
    }
  });

  it("makes the victim's own fallback folder private: the other user cannot read the token", async () => {
    const agent = await startAgentAs(VICTIM);
    try {
      const base = fs.lstatSync(fallbackBase());
      expect([base.uid, base.mode & 0o7777]).toEqual([VICTIM.uid, 0o700]);
      const token = path.join(fallbackBase(), 'tabula', 'token');
      expect(fs.statSync(token).mode & 0o777).toBe(0o600);
      const stolen = await run(ATTACKER, 'cat', [token]);
      expect(stolen.code).not.toBe(0);
      expect(stolen.stderr).toMatch(/Permission denied/);
      const status = await tabulaAs(VICTIM, ['status', '--json']);
      expect(status.code).toBe(0);
      expect(JSON.parse(status.stdout).image.version).toBeTruthy();
    } finally {
      await agent.stop();
    }
  });
});

describe("the CLI talks only to the victim's own agent socket, never to an address in a file", () => {
  it('a planted endpoint file (loose, or not http on 127.0.0.1) receives nothing: the CLI reports no agent', async () => {
    const evil = await attackerServer();
    try {
      const runtime = path.join(sb.dir, 'runtime');
      const ownEnv = { ...env, XDG_RUNTIME_DIR: runtime };
      const dir = path.join(runtime, 'tabula');
      const plant = (endpoint: string, mode: string) =>
        run(VICTIM, 'sh', ['-c', `mkdir -p -m 700 ${dir} && echo ${endpoint} > ${dir}/endpoint && echo t > ${dir}/token && chmod 600 ${dir}/token && chmod ${mode} ${dir}/endpoint`], { env: ownEnv });
      expect((await plant(evil.url, '666')).code).toBe(0);
      const loose = await tabulaAs(VICTIM, ['status'], { env: ownEnv });
      expect(loose.code).toBe(3);
      expect(loose.stderr).toContain('Tabula is not running: no agent answers on its socket.');
      expect((await plant(`https://127.0.0.1:${new URL(evil.url).port}`, '600')).code).toBe(0);
      expect((await tabulaAs(VICTIM, ['status'], { env: ownEnv })).code).toBe(3);
      expect(evil.received).toEqual([]);
    } finally {
      await evil.close();
    }
  });
});

describe('agent state names the user’s files: private (item 8)', () => {
  it('tightens state left readable by an older version, and writes new state 0600 in a 0700 folder', async () => {
    const state = path.join(sb.dir, 'state', 'tabula');
    fs.chmodSync(sb.dir, 0o755); // a home others may enter (Debian's default before 12)
    // What an older Tabula left: a world-readable folder and history naming the user's files.
    expect((await run(VICTIM, 'sh', ['-c', `mkdir -p -m 755 ${state} && echo '[]' > ${state}/history.json && chmod 644 ${state}/history.json`])).code).toBe(0);
    expect((await run(ATTACKER, 'cat', [`${state}/history.json`])).code).toBe(0); // readable before
    expect((await run(VICTIM, 'mkdir', [path.join(sb.dir, 'nas')])).code).toBe(0);
    const synced = await tabulaAs(VICTIM, ['sync', '--storage', path.join(sb.dir, 'nas')]);
    expect(synced.code, synced.stderr).toBe(0);
    expect(fs.statSync(state).mode & 0o777).toBe(0o700);
    for (const f of fs.readdirSync(state)) {
      const st = fs.lstatSync(path.join(state, f));
      expect([f, st.uid, st.mode & 0o777]).toEqual([f, VICTIM.uid, st.isDirectory() ? 0o700 : 0o600]);
    }
    expect(fs.readdirSync(state)).toContain('sync-archive');
    expect((await run(ATTACKER, 'cat', [`${state}/history.json`])).stderr).toMatch(/Permission denied/);
    expect((await run(ATTACKER, 'ls', [state])).stderr).toMatch(/Permission denied/);
  });
});

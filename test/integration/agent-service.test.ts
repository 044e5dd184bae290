// The agent as the user's service (`tabula agent`) and its clients over the socket in
// $XDG_RUNTIME_DIR/tabula: real processes throughout. A client that dies stops nothing; an agent
// that dies leaves its clients saying "not connected" and they pick up a restarted agent by themselves.
// (The tray's Electron side cannot run here; it is a thin layer over createRemoteAgent, tested below.)
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSocketClient } from '../../src-main/core/agent-socket';
import { createRemoteAgent, type RemoteAgent, type RemoteAgentChange } from '../../src-main/core/remote-agent';
import { createSandbox, repoRoot, type AgentSandbox } from '../fixtures/headless-agent';

let sb: AgentSandbox;
const children = new Set<ChildProcess>();
const remotes = new Set<RemoteAgent>();
const socketPath = () => path.join(sb.env.XDG_RUNTIME_DIR!, 'tabula', 'agent.sock');

beforeEach(() => {
  sb = createSandbox();
  fs.mkdirSync(path.join(sb.dir, 'nas'));
  sb.writeUserConfig({ storage: { url: path.join(sb.dir, 'nas') } });
});
afterEach(async () => {
  for (const r of remotes) r.close();
  remotes.clear();
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  children.clear();
  await sb.dispose();
});

/** `tabula <args>` as a long-running process; resolves once its output matches `ready`. */
async function start(args: string[], ready: RegExp) {
  const child = spawn(process.execPath, [path.join(repoRoot, 'bin/tabula.js'), ...args], { cwd: sb.dir, env: sb.env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tabula ${args.join(' ')}: not ready in 20 s.\n${out}`)), 20_000);
    const check = () => ready.test(out) && (clearTimeout(timer), resolve());
    child.stdout!.on('data', check);
    child.stderr!.on('data', check);
    check();
    void exited.then(() => (check(), reject(new Error(`tabula ${args.join(' ')} exited before it was ready.\n${out}`))));
  });
  return { child, output: () => out, exited };
}
const startAgent = () => start(['agent'], /Clients connect to /);

const until = async (what: string, cond: () => boolean | Promise<boolean>, ms = 15_000) => {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

function remote() {
  const r = createRemoteAgent(socketPath(), { retryMs: 100 });
  remotes.add(r);
  const changes: RemoteAgentChange[] = [];
  r.onChange((c) => changes.push(c));
  return { r, changes };
}

describe('tabula agent (the user service)', () => {
  it('serves the CLI over a private socket, without the token files, and never logs the token', async () => {
    const agent = await startAgent();
    const st = fs.lstatSync(socketPath());
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
    const token = fs.readFileSync(path.join(sb.env.XDG_RUNTIME_DIR!, 'tabula', 'token'), 'utf8').trim();
    expect(agent.output()).not.toContain(token);

    // The CLI needs only the socket: take away the window's address and token.
    fs.rmSync(path.join(sb.env.XDG_RUNTIME_DIR!, 'tabula', 'token'));
    fs.rmSync(path.join(sb.env.XDG_RUNTIME_DIR!, 'tabula', 'endpoint'));
    const status = await sb.cli(['status', '--json']);
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout).image.version).toBe('1.0.0');
  });

  it('keeps running and serving when its clients are killed', async () => {
    await startAgent();
    const events = await start(['events'], /^/);
    // `tabula events` prints what happens: make something happen until it shows (then it is connected).
    await until('tabula events follows the agent', async () => (await sb.cli(['backup', 'pause'])).code === 0 && events.output().includes('"type"'));
    expect((await sb.cli(['backup', 'resume'])).code).toBe(0);
    const { r } = remote();
    await until('the tray-side client is connected', () => r.connection().connected);
    events.child.kill('SIGKILL');
    await events.exited;
    r.close(); // the tray quitting

    const backup = await sb.cli(['backup', 'now']);
    expect(backup.code, backup.stdout + backup.stderr).toBe(0);
    expect(fs.readFileSync(path.join(sb.dir, 'nas', 'Documents', 'notes.txt'), 'utf8')).toBe('Remember the milk.\n');
    expect((await sb.cli(['status'])).code).toBe(0);
  });

  it('the tray-side client follows events, says "not connected" while the agent is gone, and reconnects to a restarted one', async () => {
    const first = await startAgent();
    const { r, changes } = remote();
    await until('connected', () => r.connection().connected);
    const seen: string[] = [];
    r.events.subscribe((e) => seen.push(e.type));
    expect((await r.router.handle('backup.start', {})).ok).toBe(true);
    await until('the backup events arrive', () => seen.includes('backup-state-changed'));
    expect((await r.status()).backup.storage).toBe(path.join(sb.dir, 'nas'));

    first.child.kill('SIGKILL'); // a crash: the socket file stays behind
    await first.exited;
    await until('the client noticed', () => !r.connection().connected);
    expect(r.connection().error?.message).toMatch(/^Not connected to the Tabula agent: nothing answers at .*agent\.sock/);
    const reply = await r.router.handle('status.get', {});
    expect(reply).toMatchObject({ ok: false, error: { code: 'agent-unreachable', message: expect.stringMatching(/^Not connected to the Tabula agent/) } });
    const cli = await sb.cli(['status']);
    expect(cli.code).toBe(3);
    expect(cli.stderr).toMatch(/^Tabula is not running: no agent answers on its socket/);

    // What systemd does after a crash (Restart=on-failure): start it again, over the stale socket.
    await startAgent();
    await until('reconnected', () => r.connection().connected);
    expect(changes).toEqual(['connected', 'lost', 'connected']);
    expect((await r.status()).image.version).toBe('1.0.0');
    expect((await sb.cli(['status'])).code).toBe(0);
  });

  it('a client busy longer than the agent keeps an idle connection still gets its answer (no "write EPIPE")', async () => {
    // Seen in the lab: a slow laptop starved `tabula image pull` between two polls; the agent closed
    // the idle kept-alive connection meanwhile, and the CLI's next request went to it: "write EPIPE".
    await startAgent();
    const client = createSocketClient(socketPath());
    expect((await client.call('status.get', {})).image.version).toBe('1.0.0');
    // Blocked, as a starved process is: the agent's close (Node's 5 s keep-alive) is not seen before the next write.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 7000);
    expect((await client.call('status.get', {})).image.version).toBe('1.0.0');
  }, 30_000);

  it('a second agent for the same user exits cleanly and the first keeps serving', async () => {
    await startAgent();
    const second = await start(['agent'], /already running/);
    expect(await second.exited).toBe(0); // 0: systemd does not restart it in a loop
    expect((await sb.cli(['status'])).code).toBe(0);
  });

  it('removes its socket on a clean stop (SIGTERM, as systemctl stop sends)', async () => {
    const agent = await startAgent();
    agent.child.kill('SIGTERM');
    expect(await agent.exited, agent.output()).toBe(0);
    expect(fs.existsSync(socketPath())).toBe(false);
  });

  it('refuses what is not its own socket: neither starts over it nor sends anything to it', async () => {
    fs.mkdirSync(path.dirname(socketPath()), { recursive: true, mode: 0o700 });
    fs.writeFileSync(socketPath(), 'not a socket');
    const agent = spawn(process.execPath, [path.join(repoRoot, 'bin/tabula.js'), 'agent'], { env: sb.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    agent.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    const code = await new Promise((resolve) => agent.on('close', resolve));
    expect(code).toBe(78); // the unit's RestartPreventExitStatus: restarting cannot fix this
    expect(out).toContain(`${socketPath()} is not this user's agent socket`);
    expect(fs.readFileSync(socketPath(), 'utf8')).toBe('not a socket');

    // Another user's socket (here: one handed to nobody) receives nothing from the CLI.
    fs.rmSync(socketPath());
    let received = '';
    const trap = net.createServer((s) => s.on('data', (d) => (received += d.toString())));
    await new Promise<void>((resolve) => trap.listen(socketPath(), resolve));
    fs.chownSync(socketPath(), 65534, 65534);
    const r = await sb.cli(['prefs', 'get']);
    trap.close();
    expect(r.stderr).toContain("is not this user's agent socket; Tabula sends nothing to it");
    expect(r.code).toBe(1);
    expect(received).toBe('');
  });

  it('does not start in a runtime folder others can write to, and says why (exit 78: systemd does not retry)', async () => {
    fs.mkdirSync(path.dirname(socketPath()), { recursive: true });
    fs.chmodSync(path.dirname(socketPath()), 0o777);
    const agent = spawn(process.execPath, [path.join(repoRoot, 'bin/tabula.js'), 'agent'], { env: sb.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    agent.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    expect(await new Promise((resolve) => agent.on('close', resolve))).toBe(78);
    expect(out).toContain(`Tabula will not use ${path.dirname(socketPath())}: other users can write to it`);
    expect(out).toContain('The Tabula agent does not start until this is fixed.');
    expect(fs.existsSync(socketPath())).toBe(false);
  });
});

// `tabula --headless` and the CLI as a person or a script uses them: a real agent process, real HTTP.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHttpClient } from '../../src-main/common/clients';
import { createSandbox, startHeadlessAgent, type AgentSandbox, type RunningAgent } from '../fixtures/headless-agent';

let sb: AgentSandbox;
beforeEach(() => {
  sb = createSandbox();
  sb.writeOsRelease({ NAME: 'Tabula Workstation', IMAGE_ID: 'tabula-ws', IMAGE_VERSION: '2026.11.3' });
  fs.mkdirSync(path.join(sb.dir, 'nas'));
  sb.writeUserConfig({ storage: { url: path.join(sb.dir, 'nas') } });
});
afterEach(() => sb.dispose());

const runtimeFile = (name: string) => path.join(sb.env.XDG_RUNTIME_DIR!, 'tabula', name);
const call = (agent: RunningAgent, method: string, init: { headers?: Record<string, string>; body?: string } = {}) =>
  fetch(`${agent.url}/api/call/${method}`, { method: 'POST', body: init.body ?? '{}', headers: { authorization: `Bearer ${agent.token}`, ...init.headers } });

describe('headless agent', () => {
  it('writes a private token file and answers only with it', async () => {
    const agent = await startHeadlessAgent(sb);
    expect(fs.statSync(runtimeFile('token')).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(runtimeFile('token'), 'utf8').trim()).toBe(agent.token);
    expect(agent.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

    expect((await call(agent, 'status.get')).status).toBe(200);
    const noToken = await fetch(`${agent.url}/api/call/status.get`, { method: 'POST', body: '{}' });
    expect(noToken.status).toBe(401);
    expect((await noToken.json()).error.message).toMatch(/token is missing or wrong/);
    expect((await call(agent, 'status.get', { headers: { authorization: 'Bearer nope' } })).status).toBe(401);
  });

  it('refuses other web sites and other host names', async () => {
    const agent = await startHeadlessAgent(sb);
    expect((await call(agent, 'backup.start', { headers: { origin: 'https://evil.example' } })).status).toBe(403);
    expect((await call(agent, 'status.get', { headers: { origin: agent.url } })).status).toBe(200);
    // DNS rebinding: a foreign name resolving to 127.0.0.1 still carries its own Host header.
    const rebound = await new Promise<number>((resolve) => {
      const port = new URL(agent.url).port;
      const req = http.request({ host: '127.0.0.1', port, path: '/', headers: { host: `evil.example:${port}` } }, (res) => resolve(res.statusCode!));
      req.end();
    });
    expect(rebound).toBe(421);
  });

  it('serves the window with a strict CSP and nothing outside it', async () => {
    const agent = await startHeadlessAgent(sb);
    const page = await fetch(`${agent.url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toMatch(/default-src 'none'; script-src 'self'/);
    expect(await page.text()).toContain('<div id="root">');
    expect((await fetch(`${agent.url}/..%2f..%2fpackage.json`)).status).toBe(404);
    expect((await fetch(`${agent.url}/%2e%2e/%2e%2e/package.json`)).status).toBe(404);
  });

  it('keeps running on valid layers when a config file is corrupt, naming it', async () => {
    const admin = path.join(sb.env.TABULA_ROOT!, 'etc/tabula/config.json');
    fs.mkdirSync(path.dirname(admin), { recursive: true });
    fs.writeFileSync(admin, '{ storage: nope');
    const agent = await startHeadlessAgent(sb);
    expect(agent.output()).toContain(`Warning: ${admin} is not valid JSON`);
    const status = (await (await call(agent, 'status.get')).json()).result;
    expect(status.problems).toEqual([{ file: admin, message: expect.stringContaining('Its settings are ignored') }]);
    expect(status.backup.storage).toBe(path.join(sb.dir, 'nas'));
  });

  it('says so when started twice; a restart keeps the private token, so an open window still works', async () => {
    const agent = await startHeadlessAgent(sb);
    const second = await sb.cli(['--headless']);
    expect(second.stdout).toContain(`Tabula is already running: ${agent.url}/#token=${agent.token}`);
    await agent.stop();
    expect(fs.existsSync(runtimeFile('endpoint'))).toBe(false);
    const again = await startHeadlessAgent(sb);
    expect(again.token).toBe(agent.token);
  });

  it('a window sends its token only to the agent: a program on the agent\'s port while it restarts never sees it, even relaying to the agent', async () => {
    const agent = await startHeadlessAgent(sb);
    const window = createHttpClient({ baseUrl: agent.url, token: agent.token, verifyAgent: true });
    expect(await window.call('status.get', {})).toMatchObject({ backup: expect.anything() });
    await agent.stop();

    // Another user takes the port first, so the agent comes back elsewhere (same token), and the
    // squatter passes the window's question on to it.
    const seen: string[] = [];
    let moved = '';
    const squatter = http.createServer(async (req, res) => {
      seen.push(`${req.url} ${req.headers.authorization ?? ''}`);
      const relayed = req.url?.startsWith('/api/hello') ? await (await fetch(`${moved}${req.url}`)).text() : '{}';
      res.writeHead(200, { 'content-type': 'application/json' }).end(relayed);
    });
    await new Promise<void>((resolve) => squatter.listen(Number(new URL(agent.url).port), '127.0.0.1', resolve));
    const elsewhere = await startHeadlessAgent(sb);
    moved = elsewhere.url;
    expect(elsewhere.url).not.toBe(agent.url);
    expect(elsewhere.token).toBe(agent.token);

    await expect(window.call('status.get', {})).rejects.toThrow(/could not prove it is the agent, so this window did not send it its token/);
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.join('\n')).not.toContain(agent.token);

    // The agent itself, at its new address, proves itself to a window opened there.
    const there = createHttpClient({ baseUrl: elsewhere.url, token: agent.token, verifyAgent: true });
    expect(await there.call('status.get', {})).toMatchObject({ backup: expect.anything() });
    await new Promise<void>((resolve) => squatter.close(() => resolve()));
  });
});

describe('tabula CLI', () => {
  it('explains how to start the agent when none runs', async () => {
    const r = await sb.cli(['status']);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('Tabula is not running: no agent answers on its socket. It runs as your user service: `systemctl --user start tabula-agent` (or `tabula agent`');
  });

  it('shows the image version and backup state, in words and as JSON', async () => {
    await startHeadlessAgent(sb);
    const text = await sb.cli(['status']);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('Image:   Tabula Workstation — version 2026.11.3');
    expect(text.stdout).toContain('Backup:  never — Not synced yet');
    const json = JSON.parse((await sb.cli(['status', '--json'])).stdout);
    expect(json.image.version).toBe('2026.11.3');
  });

  it('backs up now, following the run to its end, while `events` streams it', async () => {
    await startHeadlessAgent(sb);
    const follower = spawn(process.execPath, [path.join(__dirname, '../../bin/tabula.js'), 'events'], { env: sb.env });
    let lines = '';
    follower.stdout.on('data', (c: Buffer) => (lines += c.toString()));
    try {
      // Connected once it shows an event of ours (a fixed wait is too short on a loaded machine).
      await expect
        .poll(async () => (await sb.cli(['prefs', 'set', 'printers.default', 'ipp://print.example/ipp/print'])).code === 0 && lines.includes('"type"'), { timeout: 20_000 })
        .toBe(true);
      lines = '';
      const r = await sb.cli(['backup', 'now']);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^Synced with .*nas: 1 file backed up, 0 files brought in, 0 deleted\./);
      expect(fs.readFileSync(path.join(sb.dir, 'nas/Documents/notes.txt'), 'utf8')).toBe('Remember the milk.\n');
      await expect.poll(() => lines).toContain('"type":"backup-finished"');
      const types = lines.trim().split('\n').map((l) => JSON.parse(l).type);
      expect(types[0]).toBe('backup-state-changed');
    } finally {
      follower.kill();
    }
    expect((await sb.cli(['status'])).stdout).toContain('Backup:  idle — All synced');
  });

  it('exits non-zero with the reason when the backup fails', async () => {
    sb.writeUserConfig({ storage: { url: path.join(sb.dir, 'not-mounted') } });
    await startHeadlessAgent(sb);
    const r = await sb.cli(['backup', 'now']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`The storage folder ${path.join(sb.dir, 'not-mounted')} does not exist or is not mounted.`);
  });

  it('npm start falls back to headless mode, saying why in one line', async () => {
    const child = spawn(process.execPath, [path.join(__dirname, '../../bin/tabula.js'), '--launch'], { env: sb.env, detached: true });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    try {
      await expect.poll(() => out, { timeout: 60_000 }).toMatch(/Open http:\/\/127\.0\.0\.1:\d+\/#token=/);
      expect(out.split('\n')[0]).toBe('The Electron runtime is missing (it could not be downloaded here), so Tabula starts in headless mode instead.');
    } finally {
      process.kill(-child.pid!, 'SIGTERM');
    }
  });
});

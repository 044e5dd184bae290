// What an idle agent costs: one ssh connection kept from one run to the next (and closed when the agent
// stops), a control socket that works whatever the length of $XDG_RUNTIME_DIR, "Back up now" listing
// the storage in full as `tabula sync` by hand does, and runs after a change listing only the folders
// the change journal marked.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createInProcessClient } from '../../src-main/common/clients';
import type { ApiClient, BackupRun } from '../../src-main/common/contract';
import { createAgent, type Agent } from '../../src-main/core/agent';
import { resolvePaths } from '../../src-main/core/paths';
import { parseStorageUrl, sharedConnection } from '../../src-main/core/storage-url';
import type { AgentSandbox } from '../fixtures/headless-agent';
import type { SshServer } from '../fixtures/sshd';
import { useSandboxOverSsh } from '../fixtures/world-over-ssh';

const over = useSandboxOverSsh();
const remote = over.remote;
let sshd: SshServer;
let sb: AgentSandbox;
let agents: Agent[] = [];
beforeEach(() => {
  [sb, sshd] = [over.sb(), over.sshd()];
});
afterEach(async () => {
  await Promise.all(agents.map((a) => a.shutdown()));
  agents = [];
});

function nextFinished(client: ApiClient): Promise<BackupRun> {
  return new Promise((resolve) => {
    const off = client.subscribe((e) => {
      if (e.type === 'backup-finished') {
        off();
        resolve(e.data);
      }
    });
  });
}

function agentWith() {
  const agent = createAgent({ paths: resolvePaths(sb.env), autoStart: true });
  agents.push(agent);
  return { agent, client: createInProcessClient(agent.router, agent.events) };
}

function backUpNow(client: ApiClient): Promise<BackupRun> {
  const finished = new Promise<BackupRun>((resolve) => {
    const off = client.subscribe((e) => {
      if (e.type === 'backup-finished') {
        off();
        resolve(e.data);
      }
    });
  });
  return client.call('backup.start', {}).then(() => finished);
}

/** The pid of the ssh master behind `socket`, or null when none answers there. */
function master(socket: string): number | null {
  const r = spawnSync('ssh', ['-o', `ControlPath=${socket}`, '-O', 'check', 'x'], { encoding: 'utf8' });
  return r.status === 0 ? Number(/pid=(\d+)/.exec(r.stderr)?.[1]) : null;
}

describe('the shared ssh connection', () => {
  it('serves run after run of the agent, even with a runtime folder too long for a socket, and ends when the agent stops', { timeout: 90_000 }, async () => {
    // 150 characters: a socket path there would pass the 108-byte limit of a Unix socket.
    const runtime = path.join(sb.dir, 'r'.repeat(150 - sb.dir.length - 1));
    fs.mkdirSync(runtime, { mode: 0o700 });
    sb.env.XDG_RUNTIME_DIR = runtime;
    fs.mkdirSync(path.join(sb.home, 'Documents'), { recursive: true });
    fs.writeFileSync(path.join(sb.home, 'Documents/a.txt'), 'one');
    const { agent, client } = agentWith();
    const socket = sharedConnection(parseStorageUrl(sshd.url(remote())), agent.paths.runtimeDir, 0)!.socket;
    expect(Buffer.byteLength(socket)).toBeLessThanOrEqual(90);

    expect((await backUpNow(client)).outcome).toBe('success');
    expect(fs.readFileSync(path.join(remote(), 'Documents/a.txt'), 'utf8')).toBe('one');
    const first = master(socket);
    expect(first).toBeGreaterThan(0);
    // It outlives a pause between runs (ssh's persistence was 30 s, shorter than any schedule): the
    // next run, a while later, opens no connection of its own.
    await new Promise((r) => setTimeout(r, 32_000));
    fs.writeFileSync(path.join(sb.home, 'Documents/b.txt'), 'two');
    expect((await backUpNow(client)).outcome).toBe('success');
    expect(fs.readFileSync(path.join(remote(), 'Documents/b.txt'), 'utf8')).toBe('two');
    // Still the same connection: the second run opened none of its own.
    expect(master(socket)).toBe(first);

    await agent.shutdown();
    expect(master(socket)).toBeNull();
  });
});

describe('"Back up now"', () => {
  it('lists the storage in full: a file changed on the storage directly comes home at once', async () => {
    fs.writeFileSync(path.join(sb.home, 'Documents/notes.txt'), 'mine');
    const { client } = agentWith();
    expect((await backUpNow(client)).outcome).toBe('success');
    // An admin (or a restore tool) writes on the storage behind Tabula's back: the generation record
    // does not change, so only a full listing can see it.
    fs.writeFileSync(path.join(remote(), 'Documents/notes.txt'), 'restored by the helpdesk');
    fs.writeFileSync(path.join(remote(), 'Documents/new.txt'), 'put there by an admin');
    const run = await backUpNow(client);
    expect(run.outcome).toBe('success');
    expect(fs.readFileSync(path.join(sb.home, 'Documents/notes.txt'), 'utf8')).toBe('restored by the helpdesk');
    expect(fs.readFileSync(path.join(sb.home, 'Documents/new.txt'), 'utf8')).toBe('put there by an admin');
  });
});

describe('the agent with its change journal', () => {
  it('syncs a change by itself, listing only the folder that changed; "Back up now" lists the whole home', { timeout: 60_000 }, async () => {
    sb.writeUserConfig({ storage: { url: sshd.url(remote()), sshOptions: sshd.sshOptions, connectTimeoutSeconds: 5 }, backup: { watchHome: true, debounceSeconds: 1 } });
    fs.mkdirSync(path.join(sb.home, 'Music/2024'), { recursive: true });
    fs.writeFileSync(path.join(sb.home, 'Music/2024/playlist.m3u'), 'one');
    // A file also reachable from outside the home: a write there is no event in the home (inotify
    // watches folders), so only a listing of its folder can see it.
    const outside = path.join(sb.dir, 'outside-link');
    fs.linkSync(path.join(sb.home, 'Music/2024/playlist.m3u'), outside);
    const { client } = agentWith();
    expect((await backUpNow(client)).outcome).toBe('success');

    const changed = nextFinished(client);
    fs.writeFileSync(outside, 'two, written from outside');
    fs.writeFileSync(path.join(sb.home, 'Documents/notes.txt'), 'edited in the home');
    const run = await changed; // started by the change itself, after the quiet second
    expect(run.outcome).toBe('success');
    expect(fs.readFileSync(path.join(remote(), 'Documents/notes.txt'), 'utf8')).toBe('edited in the home');
    // Music/2024 was not listed: its change is not seen yet.
    expect(fs.readFileSync(path.join(remote(), 'Music/2024/playlist.m3u'), 'utf8')).toBe('one');

    expect((await backUpNow(client)).outcome).toBe('success');
    expect(fs.readFileSync(path.join(remote(), 'Music/2024/playlist.m3u'), 'utf8')).toBe('two, written from outside');
  });
});

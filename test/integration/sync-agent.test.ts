// The sync as the agent runs it: offline requests queue on disk and run by themselves when the
// storage is back (also after a restart, and after the agent was killed mid-run), conflicts are
// settled with one call, and older versions come back from the storage (after a sync under way, never under it).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createInProcessClient } from '../../src-main/common/clients';
import type { ApiClient, BackupRun, BackupState } from '../../src-main/common/contract';
import { createAgent, type Agent } from '../../src-main/core/agent';
import { resolvePaths } from '../../src-main/core/paths';
import { startCupsd } from '../fixtures/cupsd';
import { startHeadlessAgent, type AgentSandbox } from '../fixtures/headless-agent';
import { readTree } from '../fixtures/laptops';
import type { SshServer } from '../fixtures/sshd';
import { useSandboxOverSsh } from '../fixtures/world-over-ssh';
import { localEndpoint, storageEndpoint } from '../../src-main/core/sync/endpoint';
import { runSync } from '../../src-main/core/sync/engine';
import { parseStorageUrl } from '../../src-main/core/storage-url';

let sshd: SshServer;
let sb: AgentSandbox;
let agents: Agent[] = [];
const fast = { retryMinSeconds: 1, retryMaxSeconds: 2, watchHome: false };
const over = useSandboxOverSsh(fast, 2);
const remote = over.remote;

beforeEach(() => {
  [sb, sshd] = [over.sb(), over.sshd()];
});
afterEach(async () => {
  await Promise.all(agents.map((a) => a.shutdown()));
  agents = [];
  await sshd.start().catch(() => {});
});

function agentWith(autoStart = true) {
  const agent = createAgent({ paths: resolvePaths(sb.env), autoStart });
  agents.push(agent);
  return { agent, client: createInProcessClient(agent.router, agent.events) };
}

function nextFinished(client: ApiClient, pred: (r: BackupRun) => boolean = () => true): Promise<BackupRun> {
  return new Promise((resolve) => {
    const off = client.subscribe((e) => {
      if (e.type === 'backup-finished' && pred(e.data)) {
        off();
        resolve(e.data);
      }
    });
  });
}

const waitState = (agent: Agent, state: BackupState) => expect.poll(() => agent.status().backup.state, { timeout: 20_000, interval: 100 }).toBe(state);
const write = (rel: string, content: string) => {
  fs.mkdirSync(path.dirname(path.join(sb.home, rel)), { recursive: true });
  fs.writeFileSync(path.join(sb.home, rel), content);
};

describe('offline queue', () => {
  it('queues "Back up now" while the storage is down and syncs by itself when it is back', async () => {
    await sshd.stop();
    write('thesis.tex', 'chapter 1');
    const { agent, client } = agentWith();
    const failed = nextFinished(client);
    await client.call('backup.start', {});
    expect((await failed).error?.code).toBe('storage-unreachable');
    await waitState(agent, 'offline');
    const b = agent.status().backup;
    expect(b.reason).toMatch(/^Waiting for storage — 2 changes queued\. .*connection refused/);
    expect(b.reason).not.toContain('Next try');
    expect(b.nextAttemptAt).not.toBeNull();
    const journal = JSON.parse(fs.readFileSync(path.join(agent.paths.stateDir, 'queue.json'), 'utf8'));
    expect(journal.requests).toEqual([expect.objectContaining({ reason: 'manual' })]);

    await sshd.start();
    await waitState(agent, 'idle');
    expect(fs.readFileSync(path.join(remote(), 'thesis.tex'), 'utf8')).toBe('chapter 1');
    expect(JSON.parse(fs.readFileSync(path.join(agent.paths.stateDir, 'queue.json'), 'utf8')).requests).toEqual([]);
  });

  it('keeps the queue across a restart and runs it when the agent comes back', async () => {
    await sshd.stop();
    write('notes.txt', 'offline work');
    const first = agentWith();
    const failed = nextFinished(first.client);
    await first.client.call('backup.start', {});
    await failed;
    await first.agent.shutdown();

    await sshd.start();
    const second = agentWith();
    await waitState(second.agent, 'idle');
    expect(fs.readFileSync(path.join(remote(), 'notes.txt'), 'utf8')).toBe('offline work');
  });

  it('`tabula prefs apply` with no agent running (the login autostart) leaves a queued backup queued', async () => {
    await sshd.stop();
    write('draft.txt', 'written offline');
    const first = agentWith();
    const failed = nextFinished(first.client);
    await first.client.call('backup.start', {});
    expect((await failed).error?.code).toBe('storage-unreachable');
    await first.agent.shutdown();
    const queueFile = path.join(first.agent.paths.stateDir, 'queue.json');
    const historyFile = path.join(first.agent.paths.stateDir, 'history.json');
    expect(JSON.parse(fs.readFileSync(queueFile, 'utf8')).requests).toEqual([expect.objectContaining({ reason: 'manual' })]);

    // The storage answers again; then the session's autostart runs the command before any agent.
    await sshd.start();
    // RECORDING shims (they log and fail): the command must not ask tabula-helper or follow NetworkManager.
    const shims = path.join(sb.dir, 'shims');
    fs.mkdirSync(shims);
    const calls = path.join(sb.dir, 'shim-calls.log');
    for (const tool of ['pkexec', 'nmcli']) fs.writeFileSync(path.join(shims, tool), `#!/bin/sh\necho "${tool} $*" >> '${calls}'\nexit 1\n`, { mode: 0o755 });
    sb.env.PATH = `${shims}:${process.env.PATH}`;
    // A real cupsd, and a saved default printer: the login applies it, as it does every day.
    const cups = await startCupsd();
    try {
      cups.addQueue('front-desk', 'ipp://10.77.0.20/ipp/print');
      Object.assign(sb.env, cups.env);
      expect((await sb.cli(['prefs', 'set', 'printers.default', 'ipp://10.77.0.20/ipp/print'])).code).toBe(0);
      const login = await sb.cli(['prefs', 'apply']);
      expect(login.stdout).toMatch(/Applied +Default printer/);
      expect(login.code).toBe(0);
    } finally {
      await cups.stop();
    }

    expect(JSON.parse(fs.readFileSync(queueFile, 'utf8')).requests).toEqual([expect.objectContaining({ reason: 'manual' })]);
    expect(JSON.parse(fs.readFileSync(historyFile, 'utf8'))).toHaveLength(1); // only the offline attempt: the command synced nothing
    const called = fs.existsSync(calls) ? fs.readFileSync(calls, 'utf8') : '';
    expect(called).not.toMatch(/^pkexec/m);
    expect(called).not.toMatch(/^nmcli monitor/m);

    // The queued backup is still there for the agent, which runs it by itself.
    const second = agentWith();
    await waitState(second.agent, 'idle');
    expect(fs.readFileSync(path.join(remote(), 'draft.txt'), 'utf8')).toBe('written offline');
  });

  it('a cancelled run leaves its request queued; only a completed run answers it', async () => {
    await sshd.stop();
    write('a.txt', 'a');
    const { agent, client } = agentWith(false);
    const failed = nextFinished(client);
    await client.call('backup.start', {});
    await failed;
    const queueFile = path.join(agent.paths.stateDir, 'queue.json');
    await sshd.start();
    // Stop the next run at once, as a shutdown does.
    const cancelled = nextFinished(client);
    const off = client.subscribe((e) => {
      if (e.type === 'backup-state-changed' && e.data.to === 'running') void client.call('backup.cancel', {});
    });
    await client.call('backup.start', {});
    expect((await cancelled).outcome).toBe('cancelled');
    off();
    expect(JSON.parse(fs.readFileSync(queueFile, 'utf8')).requests.map((r: { reason: string }) => r.reason)).toEqual(['manual', 'manual']);
    const done = nextFinished(client);
    await client.call('backup.start', {});
    expect((await done).outcome).toBe('success');
    expect(JSON.parse(fs.readFileSync(queueFile, 'utf8')).requests).toEqual([]);
  });

  it('finishes the job after the agent is killed mid-run (SIGKILL), with no stale lock', async () => {
    fs.writeFileSync(path.join(sb.home, 'big.bin'), Buffer.alloc(60 << 20, 3));
    for (let i = 0; i < 50; i++) write(`docs/${i}.txt`, `doc ${i}`);
    sb.writeUserConfig({ storage: { url: sshd.url(remote()), sshOptions: sshd.sshOptions }, backup: { ...fast, bandwidthLimitKBps: 5_000 } });
    const running = await startHeadlessAgent(sb);
    const r = await fetch(`${running.url}/api/call/backup.start`, { method: 'POST', body: '{}', headers: { authorization: `Bearer ${running.token}` } });
    expect(r.status).toBe(200);
    await expect.poll(() => fs.existsSync(path.join(remote(), '.tabula-partial')) || fs.existsSync(path.join(remote(), 'docs')), { timeout: 20_000 }).toBe(true);
    running.kill();
    await new Promise((res) => setTimeout(res, 300));
    expect(fs.readFileSync(path.join(sb.env.XDG_STATE_HOME!, 'tabula/sync.lock'), 'utf8')).toMatch(/^\d+ [0-9a-f-]{36} sync$/); // left behind by the dead agent

    sb.writeUserConfig({ storage: { url: sshd.url(remote()), sshOptions: sshd.sshOptions }, backup: fast });
    const { agent } = agentWith(); // the queued request runs by itself
    await waitState(agent, 'idle');
    expect(fs.statSync(path.join(remote(), 'big.bin')).size).toBe(60 << 20);
    const own = (rel: string) => rel.startsWith('.tabula') || rel.startsWith('.local') || rel === 'big.bin';
    expect(readTree(remote(), own)).toEqual(readTree(sb.home, own));
    expect(fs.readFileSync(path.join(remote(), 'big.bin')).equals(fs.readFileSync(path.join(sb.home, 'big.bin')))).toBe(true);
  }, 90_000); // two 60 MB transfers and two agent starts: 29.3 s of the default 30 once under load
});

describe('deferral', () => {
  it('automatic runs wait on low battery or a metered network, saying why; "Back up now" still runs', async () => {
    // A fake: there is no battery or mobile modem here.
    const fakeProbes = { power: async () => ({ batteryPercent: 12, charging: false }), metered: async () => false as boolean | null };
    const stateDir = path.join(sb.env.XDG_STATE_HOME!, 'tabula');
    fs.mkdirSync(stateDir, { recursive: true });
    fs.writeFileSync(path.join(stateDir, 'queue.json'), JSON.stringify({ paused: false, requests: [{ at: new Date().toISOString(), reason: 'change' }] }));
    const agent = createAgent({ paths: resolvePaths(sb.env), probes: fakeProbes });
    agents.push(agent);
    await waitState(agent, 'deferred');
    expect(agent.status().backup.reason).toBe('The battery is at 12%: automatic syncs wait until it is charging or above 20%. “Back up now” still runs.');
    expect(fs.existsSync(remote())).toBe(false);

    const client = createInProcessClient(agent.router, agent.events);
    const done = nextFinished(client);
    await client.call('backup.start', {});
    expect((await done).outcome).toBe('success');
    expect(fs.readFileSync(path.join(remote(), 'Documents/notes.txt'), 'utf8')).toBe('Remember the milk.\n');

    fakeProbes.metered = async () => true;
    fakeProbes.power = async () => ({ batteryPercent: 12, charging: true });
    fs.writeFileSync(path.join(stateDir, 'queue.json'), JSON.stringify({ paused: false, requests: [{ at: new Date().toISOString(), reason: 'schedule' }] }));
    const second = createAgent({ paths: resolvePaths(sb.env), probes: fakeProbes });
    agents.push(second);
    await waitState(second, 'deferred');
    expect(second.status().backup.reason).toMatch(/^The connection is metered/);
  });
});

describe('conflicts and versions through the agent', { timeout: 90_000 }, () => {
  /** Another laptop of the same person, syncing with the same storage. */
  async function otherLaptop(edit: (home: string) => void) {
    const home = path.join(sb.dir, 'laptop-b');
    fs.mkdirSync(home, { recursive: true });
    const o = { home: localEndpoint(home), storage: storageEndpoint(parseStorageUrl(sshd.url(remote())), sshd.sshOptions, 5), excludes: [], stateDir: path.join(sb.dir, 'b-state'), host: 'laptop-b' };
    await runSync(o);
    edit(home);
    await runSync(o);
    return home;
  }

  it('lists a conflict and settles it with one call for each choice', async () => {
    const { agent, client } = agentWith(false);
    for (const f of ['mine.txt', 'theirs.txt', 'both.txt']) write(f, 'base');
    let done = nextFinished(client);
    await client.call('backup.start', {});
    await done;
    await otherLaptop((home) => {
      for (const f of ['mine.txt', 'theirs.txt', 'both.txt']) {
        fs.writeFileSync(path.join(home, f), `theirs ${f}`);
        fs.utimesSync(path.join(home, f), new Date('2026-01-01'), new Date('2026-01-01'));
      }
    });
    for (const f of ['mine.txt', 'theirs.txt', 'both.txt']) write(f, `mine ${f} (newer)`);
    done = nextFinished(client);
    await client.call('backup.start', {});
    expect((await done).conflicts).toBe(3);
    expect(agent.status().backup).toMatchObject({ state: 'attention', reason: '3 conflicts need you: both versions are kept, choose which stays.' });
    const conflicts = agent.status().backup.conflicts;
    expect(conflicts.map((c) => c.kept)).toEqual(['local', 'local', 'local']);

    await client.call('conflicts.resolve', { path: 'mine.txt', keep: 'mine' });
    await client.call('conflicts.resolve', { path: path.join(sb.home, 'theirs.txt'), keep: 'theirs' });
    done = nextFinished(client);
    await client.call('conflicts.resolve', { path: 'both.txt', keep: 'both' });
    await done;
    await waitState(agent, 'idle');
    const home = readTree(sb.home, (r) => r.startsWith('.local'));
    expect(home['mine.txt']).toBe('mine mine.txt (newer)');
    expect(home['theirs.txt']).toBe('theirs theirs.txt');
    expect(Object.entries(home).filter(([k]) => k.startsWith('both.'))).toHaveLength(2);
    expect(Object.keys(home).filter((k) => k.includes('.conflict-'))).toEqual([expect.stringMatching(/^both\.conflict-/)]);
    expect(agent.status().backup.conflicts).toEqual([]);
    const err = await client.call('conflicts.resolve', { path: 'mine.txt', keep: 'mine' }).catch((e: Error) => e);
    expect((err as Error).message).toBe('There is no conflict for ~/mine.txt.');
  });

  /** Two drafts of `rel` synced one after the other: the storage keeps the first as an older version. */
  async function twoDrafts(client: ApiClient, rel: string) {
    const sync = async () => {
      const done = nextFinished(client);
      await client.call('backup.start', {});
      return done;
    };
    write(rel, 'draft 1');
    await sync();
    await new Promise((r) => setTimeout(r, 20)); // versions are stamped to the millisecond
    write(rel, 'draft 2 (longer)');
    await sync();
    return sync;
  }

  it('restores an older version from the storage, in place or into another folder', async () => {
    const { client } = agentWith(false);
    const sync = await twoDrafts(client, 'essay.txt');
    const between = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 20));
    write('essay.txt', 'draft 3 (much longer)');
    await sync();

    const versions = await client.call('versions.list', { path: 'essay.txt' });
    expect(versions).toHaveLength(3);
    expect(versions[0]).toEqual({ replacedAt: null, stamp: null });
    const restored = await client.call('versions.restore', { path: 'essay.txt', at: between });
    expect(fs.readFileSync(restored.restoredTo, 'utf8')).toBe('draft 2 (longer)');
    const aside = path.join(sb.dir, 'restored');
    const first = await client.call('versions.restore', { path: 'essay.txt', at: '2000-01-01T00:00:00Z', to: aside });
    expect(fs.readFileSync(path.join(aside, 'essay.txt'), 'utf8')).toBe('draft 1');
    expect(first.restoredTo).toBe(path.join(aside, 'essay.txt'));
    const outside = await client.call('versions.restore', { path: '/etc/passwd' }).catch((e: Error) => e);
    expect((outside as Error).message).toBe('/etc/passwd is not inside your home folder.');
  });

  it('`tabula sync` run by hand while the agent restores a file does not run under it: it says so and changes nothing, and the restored version goes up', { timeout: 180_000 }, async () => {
    const { client } = agentWith(false);
    await twoDrafts(client, 'essay.txt');
    // A slow storage for the agent (this process) only: its rsync starts 8 s late. The command below
    // runs in a process of its own, with the sandbox's environment, at full speed.
    const slow = fs.mkdtempSync(path.join(sb.dir, 'slow-'));
    fs.writeFileSync(path.join(slow, 'rsync'), `#!/bin/sh\nsleep 8\nexec ${['/usr/bin/rsync', '/bin/rsync'].find((p) => fs.existsSync(p))} "$@"\n`, { mode: 0o755 });
    const before = process.env.PATH;
    process.env.PATH = `${slow}:${before}`;
    try {
      const restoring = client.call('versions.restore', { path: 'essay.txt', at: '2000-01-01T00:00:00Z' });
      const byHand = await sb.cli(['sync']);
      expect(byHand.code).toBe(1);
      expect(byHand.stderr).toMatch(/A restore is running \(process \d+\)/);
      expect(fs.readFileSync(path.join(remote(), 'essay.txt'), 'utf8')).toBe('draft 2 (longer)');
      await restoring;
    } finally {
      process.env.PATH = before;
    }
    expect(fs.readFileSync(path.join(sb.home, 'essay.txt'), 'utf8')).toBe('draft 1');
    await expect.poll(() => fs.readFileSync(path.join(remote(), 'essay.txt'), 'utf8'), { timeout: 60_000, interval: 200 }).toBe('draft 1');
  });

  it('a restore asked during a sync waits for it, saying so, and holds: the restored version ends in the home and on the storage', { timeout: 180_000 }, async () => {
    const { agent, client } = agentWith(false);
    await twoDrafts(client, 'Writing/essay.txt');
    // The other laptop writes draft 3, and a big file the next pull here takes a while over: rsync goes
    // folder by folder in name order, so Videos/ comes before Writing/essay.txt.
    await otherLaptop((home) => {
      fs.mkdirSync(path.join(home, 'Videos'), { recursive: true });
      fs.writeFileSync(path.join(home, 'Videos/holiday.bin'), crypto.randomBytes(4 << 20));
      fs.writeFileSync(path.join(home, 'Writing/essay.txt'), 'draft 3 from laptop-b');
    });
    sb.writeUserConfig({ storage: { url: sshd.url(remote()), sshOptions: sshd.sshOptions, connectTimeoutSeconds: 2 }, backup: { ...fast, bandwidthLimitKBps: 600 } });

    const pulling = nextFinished(client);
    await client.call('backup.start', {});
    // The pull has begun (it makes the folders first), with the big file and the essay still to come.
    await expect.poll(() => fs.existsSync(path.join(sb.home, 'Videos')), { timeout: 20_000, interval: 20 }).toBe(true);
    // The person brings back the first draft while the pull is under way.
    const restoring = client.call('versions.restore', { path: 'Writing/essay.txt', at: '2000-01-01T00:00:00Z' });
    await expect.poll(() => agent.status().backup, { timeout: 5_000, interval: 50 }).toMatchObject({ state: 'running', reason: expect.stringContaining('~/Writing/essay.txt is restored once this sync has finished') });
    expect((await pulling).outcome).toBe('success');
    expect(fs.readFileSync(path.join(sb.home, 'Videos/holiday.bin')).length).toBe(4 << 20);
    const restored = await restoring;
    expect(restored.restoredTo).toBe(path.join(sb.home, 'Writing/essay.txt'));
    // The pull did not put draft 3 back over it: the restore came after, and asked for a run by itself.
    expect(fs.readFileSync(path.join(sb.home, 'Writing/essay.txt'), 'utf8')).toBe('draft 1');
    await expect.poll(() => fs.readFileSync(path.join(remote(), 'Writing/essay.txt'), 'utf8'), { timeout: 30_000, interval: 200 }).toBe('draft 1');
    await waitState(agent, 'idle');
    expect(fs.readFileSync(path.join(sb.home, 'Writing/essay.txt'), 'utf8')).toBe('draft 1');
    // Draft 3 is not lost: it is the storage's newest older version.
    const versions = await client.call('versions.list', { path: 'Writing/essay.txt' });
    expect(versions).toHaveLength(4);
  });
});

describe('first login on a new laptop', { timeout: 60_000 }, () => {
  it('restores a home never synced with the storage the image names as soon as the agent starts, not after the interval', async () => {
    // What another laptop left on the storage (a real sync: the storage has its marker).
    const old = path.join(sb.dir, 'old-laptop');
    fs.mkdirSync(path.join(old, 'Documents'), { recursive: true });
    fs.writeFileSync(path.join(old, 'Documents/report.txt'), 'Quarterly numbers, final.\n');
    await runSync({ home: localEndpoint(old), storage: storageEndpoint(parseStorageUrl(sshd.url(remote())), sshd.sshOptions, 5), excludes: [], stateDir: path.join(sb.dir, 'old-state'), host: 'old-laptop' });
    // The NAS as the image names it (a managed laptop); nothing in the person's own config.
    fs.rmSync(resolvePaths(sb.env).userConfigFile, { force: true });
    const system = resolvePaths(sb.env).systemDefaultsFile;
    fs.mkdirSync(path.dirname(system), { recursive: true });
    fs.writeFileSync(system, JSON.stringify({ storage: { url: sshd.url(remote()), sshOptions: sshd.sshOptions, connectTimeoutSeconds: 2 }, backup: { ...fast, intervalMinutes: 60 } }));

    const { agent } = agentWith();
    await expect.poll(() => fs.existsSync(path.join(sb.home, 'Documents/report.txt')), { timeout: 20_000, interval: 200 }).toBe(true);
    expect(fs.readFileSync(path.join(sb.home, 'Documents/report.txt'), 'utf8')).toBe('Quarterly numbers, final.\n');
    await waitState(agent, 'idle');

    // Once synced, the next start waits for the interval (or a change) as before.
    await agent.shutdown();
    fs.writeFileSync(path.join(old, 'Documents/later.txt'), 'written on the old laptop later\n');
    await runSync({ home: localEndpoint(old), storage: storageEndpoint(parseStorageUrl(sshd.url(remote())), sshd.sshOptions, 5), excludes: [], stateDir: path.join(sb.dir, 'old-state'), host: 'old-laptop' });
    const second = agentWith();
    await new Promise((r) => setTimeout(r, 3000));
    expect(fs.existsSync(path.join(sb.home, 'Documents/later.txt'))).toBe(false);
    expect(second.agent.status().backup.nextAttemptAt).not.toBeNull();
  });

  it('waits for the person (or the interval) with a storage they chose themselves', async () => {
    sb.writeUserConfig({ storage: { url: sshd.url(remote()), sshOptions: sshd.sshOptions, connectTimeoutSeconds: 2 }, backup: { ...fast, intervalMinutes: 60 } });
    const { agent } = agentWith();
    await new Promise((r) => setTimeout(r, 3000));
    expect(agent.status().backup.state).toBe('never');
    expect(fs.existsSync(remote())).toBe(false);
  });
});

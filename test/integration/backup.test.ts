// "Back up now" for real: rsync into a local folder and over a real sshd on 127.0.0.1.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createInProcessClient } from '../../src-main/common/clients';
import type { AgentEvent, BackupRun } from '../../src-main/common/contract';
import { createAgent, type Agent } from '../../src-main/core/agent';
import { resolvePaths } from '../../src-main/core/paths';
import { createSandbox, type AgentSandbox } from '../fixtures/headless-agent';
import { startSshServer, type SshServer } from '../fixtures/sshd';

let sb: AgentSandbox;
let agents: Agent[] = [];
const storage = () => path.join(sb.dir, 'nas');

function newAgent() {
  const agent = createAgent({ paths: resolvePaths(sb.env), autoStart: false });
  agents.push(agent);
  return agent;
}

/** Starts a backup and resolves with its finished run and every event it published. */
async function backup(agent: Agent, whileRunning?: () => void): Promise<{ run: BackupRun; events: AgentEvent[] }> {
  const events: AgentEvent[] = [];
  const client = createInProcessClient(agent.router, agent.events);
  const done = new Promise<BackupRun>((resolve) => {
    const off = client.subscribe((e) => {
      events.push(e);
      if (e.type === 'backup-progress' && whileRunning) whileRunning();
      if (e.type === 'backup-finished') {
        off();
        resolve(e.data);
      }
    });
  });
  await client.call('backup.start', {});
  return { run: await done, events };
}

const write = (rel: string, content: string | Buffer) => {
  const file = path.join(sb.home, rel);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, content);
};

beforeEach(() => {
  sb = createSandbox();
  fs.mkdirSync(storage());
  sb.writeUserConfig({ storage: { url: storage() } });
});
afterEach(async () => {
  await Promise.all(agents.map((a) => a.shutdown()));
  agents = [];
  await sb.dispose();
});

describe('backup to a mounted folder', () => {
  it('copies the home with modes and times, skipping caches, trash and Tabula state', async () => {
    write('Documents/report.odt', 'quarterly');
    write('.cache/thumbs/x.png', 'cache');
    write('.local/share/Trash/files/old.txt', 'trash');
    fs.chmodSync(path.join(sb.home, 'Documents/report.odt'), 0o640);
    fs.utimesSync(path.join(sb.home, 'Documents/report.odt'), new Date('2020-01-02'), new Date('2020-01-02'));

    const { run, events } = await backup(newAgent());
    expect(run).toMatchObject({ outcome: 'success', error: null });
    const copied = path.join(storage(), 'Documents/report.odt');
    expect(fs.readFileSync(copied, 'utf8')).toBe('quarterly');
    expect(fs.statSync(copied).mode & 0o777).toBe(0o640);
    expect(fs.statSync(copied).mtime.toISOString()).toBe(new Date('2020-01-02').toISOString());
    expect(fs.existsSync(path.join(storage(), '.cache'))).toBe(false);
    expect(fs.existsSync(path.join(storage(), '.local/share/Trash'))).toBe(false);
    expect(fs.existsSync(path.join(storage(), '.local/state/tabula'))).toBe(false);
    const last = events.filter((e) => e.type === 'backup-progress').at(-1);
    expect(last?.data).toMatchObject({ percent: 100 });
  });

  it('honours the user excludes from config', async () => {
    write('Videos/film.mkv', 'big');
    write('notes.txt', 'keep');
    sb.writeUserConfig({ storage: { url: storage() }, backup: { excludes: ['/Videos/'] } });
    await backup(newAgent());
    expect(fs.existsSync(path.join(storage(), 'notes.txt'))).toBe(true);
    expect(fs.existsSync(path.join(storage(), 'Videos'))).toBe(false);
  });

  it('copies hostile names literally and runs nothing they contain', async () => {
    const names = ['; touch PWNED', '$(touch PWNED2)', '`touch PWNED3`', '-rf', '--delete', 'new\nline', 'quote\'s "and" more', 'café-NFC', 'cafe\u0301-NFD', ' leading space'];
    for (const n of names) write(n, n);
    const { run } = await backup(newAgent());
    expect(run.outcome).toBe('success');
    for (const n of names) expect(fs.readFileSync(path.join(storage(), n), 'utf8')).toBe(n);
    for (const marker of ['PWNED', 'PWNED2', 'PWNED3']) {
      expect(fs.existsSync(path.join(sb.home, marker))).toBe(false);
      expect(fs.existsSync(path.join(process.cwd(), marker))).toBe(false);
    }
  });

  it('keeps the history across agent restarts', async () => {
    write('a.txt', 'a');
    const { run } = await backup(newAgent());
    const restarted = newAgent();
    expect(restarted.status().backup).toMatchObject({ state: 'idle', lastSuccessAt: run.finishedAt });
    const history = await createInProcessClient(restarted.router, restarted.events).call('backup.history', {});
    expect(history.map((r) => r.id)).toEqual([run.id]);
  });

  it('says the NAS is not mounted instead of filling the mount point', async () => {
    sb.writeUserConfig({ storage: { url: path.join(sb.dir, 'mnt/nas/ann') } });
    const agent = newAgent();
    const { run } = await backup(agent);
    expect(run.error).toMatchObject({ code: 'storage-unreachable' });
    expect(run.error!.message).toMatch(/does not exist or is not mounted/);
    expect(agent.status().backup.state).toBe('offline');
    expect(fs.existsSync(path.join(sb.dir, 'mnt'))).toBe(false);
  });

  it('says which files could not be read', async () => {
    if (process.getuid?.() === 0) return; // root reads everything; the wording is covered by the parser tests
    write('secret.txt', 's');
    fs.chmodSync(path.join(sb.home, 'secret.txt'), 0);
    const { run } = await backup(newAgent());
    expect(run.error?.message).toMatch(/1 file could not be backed up \(permission denied for ~\/secret\.txt\)/);
  });

  it('stops on cancel, leaves no rsync behind, and the next run finishes the job', async () => {
    write('big.bin', Buffer.alloc(400 << 20, 1));
    const agent = newAgent();
    let cancelled = false;
    const { run } = await backup(agent, () => {
      if (!cancelled) {
        cancelled = true;
        void agent.router.handle('backup.cancel', {});
      }
    });
    expect(run.outcome).toBe('cancelled');
    expect(run.error?.message).toMatch(/stopped before it finished/);
    expect(agent.status().backup.state).toBe('failed');
    expect(rsyncProcessesFor(sb.home)).toEqual([]);
    const again = await backup(agent);
    expect(again.run.outcome).toBe('success');
    expect(fs.statSync(path.join(storage(), 'big.bin')).size).toBe(400 << 20);
  });
});

function rsyncProcessesFor(home: string): string[] {
  const out = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.startsWith('rsync') && l.includes(home));
}

describe('backup over ssh', () => {
  let sshd: SshServer;
  beforeAll(async () => {
    sshd = await startSshServer();
  });
  afterAll(() => sshd.dispose());

  it('lands the home on the server, creating the folder', async () => {
    write('Documents/plan.txt', 'over ssh');
    const remote = path.join(sb.dir, 'server/users/ann');
    sb.writeUserConfig({ storage: { url: sshd.url(remote), sshOptions: sshd.sshOptions } });
    const { run } = await backup(newAgent());
    expect(run).toMatchObject({ outcome: 'success', filesTransferred: expect.any(Number) });
    expect(fs.readFileSync(path.join(remote, 'Documents/plan.txt'), 'utf8')).toBe('over ssh');
  });

  it('reports an unreachable server in words and recovers when it is back', async () => {
    write('a.txt', 'a');
    const remote = path.join(sb.dir, 'server2');
    sb.writeUserConfig({ storage: { url: sshd.url(remote), sshOptions: sshd.sshOptions, connectTimeoutSeconds: 3 } });
    const agent = newAgent();
    await sshd.stop();
    try {
      const { run } = await backup(agent);
      expect(run.error).toMatchObject({ code: 'storage-unreachable', retryable: true });
      expect(run.error!.message).toMatch(/cannot be reached right now \(connection refused\)/);
      expect(agent.status().backup).toMatchObject({ state: 'offline', queuedChanges: 2 });
      expect(agent.status().backup.reason).toBe(`Waiting for storage — 2 changes queued. ${run.error!.message}`);
    } finally {
      await sshd.start();
    }
    const { run } = await backup(agent);
    expect(run.outcome).toBe('success');
    expect(agent.status().backup.state).toBe('idle');
  });

  it('reports a refused key as a login problem', async () => {
    const remote = path.join(sb.dir, 'server3');
    const wrongKey = path.join(sb.dir, 'wrong_key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', wrongKey]);
    const options = sshd.sshOptions.map((o) => (o === sshd.identityFile ? wrongKey : o));
    sb.writeUserConfig({ storage: { url: sshd.url(remote), sshOptions: options } });
    const { run } = await backup(newAgent());
    expect(run.error).toMatchObject({ code: 'storage-auth-failed' });
  });
});

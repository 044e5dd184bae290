// What issue 8 asked of the agent and the CLI, against a real agent process and real rsync: the
// backup state belongs to the storage in use, the built-in storage is never watched into a loop,
// the diagnostics bundle, and the command line's grammar and exit codes.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createInProcessClient } from '../../src-main/common/clients';
import type { BackupRun } from '../../src-main/common/contract';
import { createAgent, type Agent } from '../../src-main/core/agent';
import { resolvePaths } from '../../src-main/core/paths';
import { createSandbox, startHeadlessAgent, type AgentSandbox } from '../fixtures/headless-agent';

let sb: AgentSandbox;
const agents: Agent[] = [];
beforeEach(() => {
  sb = createSandbox();
});
afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.shutdown()));
  await sb.dispose();
});

function finished(agent: Agent): Promise<BackupRun> {
  return new Promise((resolve) => {
    const off = agent.events.subscribe((e) => {
      if (e.type === 'backup-finished') {
        off();
        resolve(e.data);
      }
    });
  });
}

describe('the built-in storage', () => {
  it('is local-only, and a run writing into it does not wake the watcher for a second run', async () => {
    // Defaults: storage in ~/.local/share/tabula/storage, the home watched; a short debounce.
    sb.writeUserConfig({ backup: { debounceSeconds: 1 } });
    // XDG_DATA_HOME unset, as on a real laptop: the built-in storage is inside the home.
    const agent = createAgent({ paths: resolvePaths({ ...sb.env, XDG_DATA_HOME: undefined }), autoStart: true, watchNetwork: () => () => undefined });
    agents.push(agent);
    const client = createInProcessClient(agent.router, agent.events);
    const runs: BackupRun[] = [];
    agent.events.subscribe((e) => e.type === 'backup-finished' && runs.push(e.data));
    const first = finished(agent);
    await client.call('backup.start', {});
    expect((await first).outcome).toBe('success');
    expect(fs.existsSync(path.join(sb.home, '.local/share/tabula/storage/Documents/notes.txt'))).toBe(true);
    // Before the fix the watcher saw the run's own writes into the storage and started another run.
    await new Promise((r) => setTimeout(r, 4000));
    expect(runs).toHaveLength(1);
    const s = agent.status().backup;
    expect(s.localOnly).toBe(true);
    expect(s.state).toBe('idle');
  });
});

describe('switching from the built-in storage to a real one', () => {
  it('sends the home, not the old local copy or its versions', async () => {
    // XDG_DATA_HOME unset, as on a real laptop: the built-in storage is inside the home.
    const paths = resolvePaths({ ...sb.env, XDG_DATA_HOME: undefined });
    const agent = createAgent({ paths, autoStart: false, watchNetwork: () => () => undefined });
    agents.push(agent);
    const client = createInProcessClient(agent.router, agent.events);
    let done = finished(agent);
    await client.call('backup.start', {});
    expect((await done).outcome).toBe('success');
    // A second run after an edit leaves an older version in the built-in storage's versions area too.
    fs.writeFileSync(path.join(sb.home, 'Documents', 'notes.txt'), 'Remember the milk and the bread.\n');
    done = finished(agent);
    await client.call('backup.start', {});
    expect((await done).outcome).toBe('success');
    const local = path.join(sb.home, '.local/share/tabula/storage');
    expect(fs.readFileSync(path.join(local, 'Documents/notes.txt'), 'utf8')).toContain('bread');

    const nas = path.join(sb.dir, 'nas');
    fs.mkdirSync(nas);
    sb.writeUserConfig({ storage: { url: nas } });
    done = finished(agent);
    await client.call('backup.start', {});
    expect((await done).outcome).toBe('success');
    expect(fs.readFileSync(path.join(nas, 'Documents/notes.txt'), 'utf8')).toContain('bread');
    // Nothing from inside Tabula's data folder (at most the empty folder itself, as rsync makes parents).
    const sent = fs.readdirSync(nas, { recursive: true }).map(String);
    expect(sent.filter((p) => p.startsWith('.local/share/tabula/'))).toEqual([]);
  });
});

describe('backup state per storage', () => {
  it('resets when storage.url changes: never synced there, not "All synced", queued changes counted', async () => {
    const nasA = path.join(sb.dir, 'nas-a');
    const nasB = path.join(sb.dir, 'nas-b');
    fs.mkdirSync(nasA);
    fs.mkdirSync(nasB);
    sb.writeUserConfig({ storage: { url: nasA } });
    const agent = createAgent({ paths: resolvePaths(sb.env), autoStart: false, watchNetwork: () => () => undefined });
    agents.push(agent);
    const client = createInProcessClient(agent.router, agent.events);
    const done = finished(agent);
    await client.call('backup.start', {});
    await done;
    expect(agent.status().backup).toMatchObject({ state: 'idle', storage: nasA });

    sb.writeUserConfig({ storage: { url: nasB } });
    // The run's finished event comes just before the run lets go of the state.
    await expect.poll(() => agent.status().backup.storage).toBe(nasB);
    const b = agent.status().backup;
    expect(b).toMatchObject({ state: 'never', storage: nasB, lastSuccessAt: null, lastRun: null });
    expect(b.reason).not.toContain('All synced');
    await expect.poll(() => agent.status().backup.queuedChanges).toBe(1);

    // And back: nasA's history is still nasA's.
    sb.writeUserConfig({ storage: { url: nasA } });
    expect(agent.status().backup).toMatchObject({ state: 'idle', storage: nasA });
  });
});

describe('diagnostics bundle', () => {
  it('holds the config layers with secrets removed, prefs, recent events and history', async () => {
    fs.mkdirSync(path.join(sb.dir, 'nas'));
    sb.writeUserConfig({ storage: { url: path.join(sb.dir, 'nas'), sshOptions: ['-o', 'IdentityFile=/home/ann/.ssh/id'] }, backup: { password: 'hunter2' } });
    const agent = createAgent({ paths: resolvePaths(sb.env), autoStart: false, watchNetwork: () => () => undefined });
    agents.push(agent);
    const client = createInProcessClient(agent.router, agent.events);
    const done = finished(agent);
    await client.call('backup.start', {});
    await done;
    const { file, text } = await client.call('helpdesk.diagnostics', {});
    expect(fs.readFileSync(file, 'utf8')).toBe(text);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const bundle = JSON.parse(text);
    expect(text).not.toContain('hunter2');
    const userLayer = bundle.config.layers.find((l: { file: string }) => l.file.endsWith('config/tabula/config.json'));
    expect(userLayer.content.backup.password).toBe('(removed)');
    expect(userLayer.content.storage.url).toBe(path.join(sb.dir, 'nas'));
    expect(bundle.config.layers.map((l: { file: string }) => path.basename(path.dirname(l.file)))).toContain('tabula');
    expect(bundle.prefs).toHaveProperty('version');
    expect(bundle.backupHistory).toHaveLength(1);
    expect(bundle.recentEvents.map((e: { type: string }) => e.type)).toContain('backup-finished');
  });
});

describe('the headless banner', () => {
  it('names the image as the window does: "Debian GNU/Linux 12 (bookworm)", not "… (bookworm) 12"', async () => {
    sb.writeOsRelease({ PRETTY_NAME: 'Debian GNU/Linux 12 (bookworm)', NAME: 'Debian GNU/Linux', VERSION_ID: '12', ID: 'debian' });
    const agent = await startHeadlessAgent(sb);
    expect(agent.output().split('\n')[0]).toBe('Tabula — Debian GNU/Linux 12 (bookworm) — headless agent running.');
    await agent.stop();
  });
});

describe('the window address across restarts', () => {
  it('`--port 0` comes back on the previous port; when that is taken, on another, and a planted port file is ignored', async () => {
    const first = await startHeadlessAgent(sb);
    await first.stop();
    const again = await startHeadlessAgent(sb);
    expect(again.url).toBe(first.url);
    await again.stop();
    // Something else took the port meanwhile: the agent still starts, elsewhere.
    const squatter = net.createServer();
    await new Promise<void>((resolve) => squatter.listen(Number(new URL(first.url).port), '127.0.0.1', resolve));
    try {
      const elsewhere = await startHeadlessAgent(sb);
      expect(elsewhere.url).not.toBe(first.url);
      await elsewhere.stop();
    } finally {
      squatter.close();
    }
    // A port file naming a system port is not followed (any free port instead).
    const portFile = path.join(sb.env.XDG_RUNTIME_DIR!, 'tabula', 'window-port');
    fs.writeFileSync(portFile, '22\n', { mode: 0o600 });
    const fourth = await startHeadlessAgent(sb);
    expect(new URL(fourth.url).port).not.toBe('22');
    await fourth.stop();
  });
});

describe('the command line', () => {
  it('names an unknown command or option in one line and exits 64; help exits 0', async () => {
    for (const argv of [['bogus'], ['status', '--bogus'], ['--headless', '--port', 'abc'], ['backup'], ['backup', 'now', '--nope'], ['versions'], ['conflicts', 'resolve', 'x.txt'], ['conflicts', 'resolve', 'x.txt', '--keep', 'nope']]) {
      const r = await sb.cli(argv);
      expect(r.code, argv.join(' ')).toBe(64);
      expect(r.stderr.trim().split('\n'), argv.join(' ')).toHaveLength(1);
      expect(r.stdout).toBe('');
    }
    expect((await sb.cli(['conflicts', 'resolve', 'x.txt', '--keep', 'nope'])).stderr).toBe('--keep takes mine, theirs or both, not "nope" (usage: tabula conflicts resolve PATH --keep mine|theirs|both [--json]).\n');
    const help = await sb.cli(['help']);
    expect(help.code).toBe(0);
    for (const line of ['tabula backup now [--force] [--no-wait]', 'tabula conflicts resolve PATH --keep mine|theirs|both', 'tabula prefs apply [--dry-run] [--only printers,displays,network]', 'tabula fleet poll', 'tabula help [COMMAND]', 'tabula sync [--dry-run] [--force] [--quick|--verify] [--home DIR] [--storage URL] [--json]']) {
      expect(help.stdout).toContain(line);
    }
    const one = await sb.cli(['help', 'restore']);
    expect(one).toMatchObject({ code: 0, stdout: expect.stringContaining('tabula restore PATH [--at TIME] [--to DIR]') });
    expect(one.stdout.trim().split('\n')).toHaveLength(2);
  });

  it('--storage ftp://x says which storage URLs work, in one line, and exits 64 like any wrong command line', async () => {
    for (const url of ['ftp://x/y', 'relative/folder']) {
      const r = await sb.cli(['sync', '--storage', url]);
      expect(r.code, url).toBe(64);
      expect(r.stderr.trim().split('\n'), url).toHaveLength(1);
    }
    const r = await sb.cli(['sync', '--storage', 'ftp://x/y']);
    expect(r.stderr).toBe('The storage location "ftp://x/y" is not usable: ftp: is not supported; use ssh://user@host[:port]/path (any sshd or NAS with rsync), file:///path or an absolute path.\n');
    // The same URL in the config file is no command-line mistake: named, exit 1.
    sb.writeUserConfig({ storage: { url: 'ftp://x/y' } });
    const fromConfig = await sb.cli(['sync']);
    expect(fromConfig.code).toBe(1);
    expect(fromConfig.stderr).toContain('ftp: is not supported');
  });

  it('paths printed by `tabula versions` are accepted back from anywhere; a file with no version exits 1', async () => {
    fs.mkdirSync(path.join(sb.dir, 'nas'));
    sb.writeUserConfig({ storage: { url: path.join(sb.dir, 'nas') }, backup: { watchHome: false } });
    const agent = await startHeadlessAgent(sb);
    try {
      expect((await sb.cli(['backup', 'now'])).code).toBe(0);
      expect((await sb.cli(['status'])).stdout).toMatch(/^Safety: {2}Safe on .*nas — backed up just now$/m);
      // The CLI runs in the sandbox folder, outside the home: "Documents/notes.txt" is the home's.
      const found = await sb.cli(['versions', 'Documents/notes.txt']);
      if (found.code) console.error(found);
      expect(found).toMatchObject({ code: 0, stdout: expect.stringContaining('current copy on the storage') });
      const missing = await sb.cli(['versions', 'Documents/never-there.txt']);
      expect(missing.code).toBe(1);
      expect(missing.stderr.trim()).toBe('The storage keeps no version of ~/Documents/never-there.txt.');
    } finally {
      await agent.stop();
    }
  });

  it('a refusal past the 50 files it names gives the whole count: `tabula status` and `tabula backup now` say 100, not 50', async () => {
    const nas = path.join(sb.dir, 'nas');
    fs.mkdirSync(nas);
    fs.mkdirSync(path.join(sb.home, 'Many'));
    for (let i = 0; i < 120; i++) fs.writeFileSync(path.join(sb.home, 'Many', `f${i}.txt`), `${i}\n`);
    sb.writeUserConfig({ storage: { url: nas }, backup: { watchHome: false } });
    const agent = await startHeadlessAgent(sb);
    try {
      expect((await sb.cli(['backup', 'now'])).code).toBe(0);
      // Deleted on the storage (another laptop, a mistake): the next sync would delete 100 here.
      for (let i = 0; i < 100; i++) fs.rmSync(path.join(nas, 'Many', `f${i}.txt`));
      const refused = await sb.cli(['backup', 'now']);
      expect(refused.code).toBe(2);
      const lines = refused.stderr.split('\n');
      expect(lines[0]).toBe('This sync would delete 100 of 121 files in your home (more than 50%). Nothing was changed.');
      expect(lines.filter((l) => /^ {2}~\/Many\/f\d+\.txt$/.test(l))).toHaveLength(50);
      expect(lines).toContain('  …and 50 more files');
      expect((await sb.cli(['status'])).stdout).toContain('It would delete 100 files; nothing was changed.');
      expect(fs.readdirSync(path.join(sb.home, 'Many'))).toHaveLength(120);
    } finally {
      await agent.stop();
    }
  });

  it('prefs apply exits non-zero when something was not applied', async () => {
    // A default printer is saved, but this machine has no such printer (no cupsd at all here).
    expect((await sb.cli(['prefs', 'set', 'printers.default', 'ipp://printer.example/ipp/print'])).code).toBe(0);
    const r = await sb.cli(['prefs', 'apply', '--only', 'printers']);
    expect(r.stdout).toMatch(/Failed|Not applied/);
    expect(r.code).toBe(1);
  });
});

// `tabula sync` while the agent runs is a run of the agent (sync.run over its socket): the agent's
// change journal says what changed, so the home is not listed in full, and the person sees what a run
// of its own would show (the same lines, the same exit codes). A real headless agent, real inotifywait,
// real rsync over a real sshd on 127.0.0.1.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { createSocketClient } from '../../src-main/core/agent-socket';
import { agentSocketPath, resolvePaths } from '../../src-main/core/paths';
import { repoRoot, startHeadlessAgent, type AgentSandbox } from '../fixtures/headless-agent';
import { useSandboxOverSsh } from '../fixtures/world-over-ssh';

let sb: AgentSandbox;
const home = (rel: string) => path.join(sb.home, rel);
const onStorage = (rel: string) => fs.readFileSync(path.join(remote(), rel), 'utf8');

// Runs only when asked: no run by itself after a change (5 minutes of quiet) or on the schedule.
const over = useSandboxOverSsh({ watchHome: true, debounceSeconds: 300, intervalMinutes: 600 });
const remote = over.remote;
beforeEach(() => {
  sb = over.sb();
});

/** The runs the agent made (its history): a run of `tabula sync` in its own process is not among them. */
const agentRuns = async () => (await createSocketClient(agentSocketPath(resolvePaths(sb.env))).call('backup.history', {})).length;

describe('`tabula sync` while the agent runs', () => {
  it('is a run of the agent: it sees edits made meanwhile (also one that keeps size and time, `touch -r`) through the journal, and says the same as a run of its own', { timeout: 120_000 }, async () => {
    fs.mkdirSync(home('Music/2024'), { recursive: true });
    fs.writeFileSync(home('Music/2024/playlist.m3u'), 'one');
    fs.writeFileSync(home('Documents/same-size.txt'), 'aaaa');
    // A file also reachable from outside the home: a write there is no event in the home, so a run that
    // goes by the journal does not see it, and one that lists the home in full does.
    const outside = path.join(sb.dir, 'outside-link');
    fs.linkSync(home('Music/2024/playlist.m3u'), outside);
    await startHeadlessAgent(sb);

    const first = await sb.cli(['sync']);
    expect(first).toMatchObject({ code: 0, stdout: 'Sent 3 items, brought in 0, deleted 0 on the storage and 0 here.\n' });
    expect(onStorage('Documents/notes.txt')).toBe('Remember the milk.\n');
    expect(await agentRuns()).toBe(1);

    // Edits while the agent runs, the command right after them.
    fs.writeFileSync(home('Documents/notes.txt'), 'Remember the bread.\n');
    const ref = path.join(sb.dir, 'ref');
    fs.writeFileSync(ref, '');
    spawnSync('touch', ['-r', home('Documents/same-size.txt'), ref]);
    fs.writeFileSync(home('Documents/same-size.txt'), 'bbbb');
    expect(spawnSync('touch', ['-r', ref, home('Documents/same-size.txt')]).status).toBe(0);
    fs.writeFileSync(outside, 'two, written from outside');
    const quick = await sb.cli(['sync', '--quick']);
    expect(quick).toMatchObject({ code: 0, stdout: 'Sent 2 items, brought in 0, deleted 0 on the storage and 0 here.\n' });
    expect(onStorage('Documents/notes.txt')).toBe('Remember the bread.\n');
    expect(onStorage('Documents/same-size.txt')).toBe('bbbb');
    expect(onStorage('Music/2024/playlist.m3u')).toBe('one'); // the journal's run: Music/2024 was not listed
    expect(await agentRuns()).toBe(2);

    // Without --quick the home and the storage are listed in full, as always by hand.
    const full = await sb.cli(['sync', '--json']);
    expect(full.code).toBe(0);
    expect(JSON.parse(full.stdout)).toMatchObject({ dryRun: false, pushed: ['Music/2024/playlist.m3u'], counts: { pushed: 1, pulled: 0, deletedLocal: 0, deletedRemote: 0 } });
    expect(onStorage('Music/2024/playlist.m3u')).toBe('two, written from outside');
    expect(await agentRuns()).toBe(3);

    // A refusal is exit 2 with the same words; --force goes ahead.
    for (const f of ['Documents/notes.txt', 'Documents/same-size.txt', 'Music/2024/playlist.m3u']) fs.rmSync(home(f));
    const refused = await sb.cli(['sync', '--quick']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('If this is what you meant, go ahead with: tabula sync --force');
    expect(fs.existsSync(path.join(remote(), 'Documents/notes.txt'))).toBe(true);
    expect(await sb.cli(['sync', '--quick', '--force'])).toMatchObject({ code: 0, stdout: 'Sent 0 items, brought in 0, deleted 3 on the storage and 0 here.\n' });
    expect(fs.existsSync(path.join(remote(), 'Documents/notes.txt'))).toBe(false);
    expect(await agentRuns()).toBe(5);
  });

  it('Ctrl-C stops the run in the agent, which says so as a run of its own would (exit 1), and the next run sends the rest', { timeout: 120_000 }, async () => {
    // The agent's rsync starts 8 s late: the command is interrupted while the run is under way.
    const slow = path.join(sb.dir, 'slow-bin');
    fs.mkdirSync(slow);
    fs.writeFileSync(path.join(slow, 'rsync'), `#!/bin/sh\nsleep 8\nexec ${['/usr/bin/rsync', '/bin/rsync'].find((p) => fs.existsSync(p))} "$@"\n`, { mode: 0o755 });
    sb.env.PATH = `${slow}:${sb.env.PATH}`;
    await startHeadlessAgent(sb);
    const child = spawn(process.execPath, [path.join(repoRoot, 'bin/tabula.js'), 'sync'], { env: sb.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    await expect.poll(async () => (await createSocketClient(agentSocketPath(resolvePaths(sb.env))).call('status.get', {})).backup.state, { timeout: 20_000 }).toBe('running');
    child.kill('SIGINT');
    expect(await exited).toBe(1);
    expect(stderr).toContain('The sync was stopped before it finished.');
    expect(fs.existsSync(path.join(remote(), 'Documents/notes.txt'))).toBe(false);
    expect(await sb.cli(['sync'])).toMatchObject({ code: 0, stdout: 'Sent 1 item, brought in 0, deleted 0 on the storage and 0 here.\n' });
  });

  it('runs in its own process when the agent is paused, and when the agent died and left its socket', { timeout: 120_000 }, async () => {
    const agent = await startHeadlessAgent(sb);
    expect((await sb.cli(['backup', 'pause'])).code).toBe(0);
    fs.writeFileSync(home('Documents/todo.txt'), 'paused');
    expect(await sb.cli(['sync', '--quick'])).toMatchObject({ code: 0, stdout: 'Sent 2 items, brought in 0, deleted 0 on the storage and 0 here.\n' });
    expect(onStorage('Documents/todo.txt')).toBe('paused');
    expect(await agentRuns()).toBe(0);

    agent.kill();
    await new Promise((r) => setTimeout(r, 500));
    expect(fs.lstatSync(agentSocketPath(resolvePaths(sb.env))).isSocket()).toBe(true);
    fs.writeFileSync(home('Documents/todo.txt'), 'no agent');
    expect(await sb.cli(['sync', '--quick'])).toMatchObject({ code: 0, stdout: 'Sent 1 item, brought in 0, deleted 0 on the storage and 0 here.\n' });
    expect(onStorage('Documents/todo.txt')).toBe('no agent');
  });
});

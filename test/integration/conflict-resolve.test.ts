// Every way out of a conflict leaves exactly the files a person chose, in the home, on the storage
// and on the other laptop, while the inbox empties: the real agent (`tabula --headless`) over its HTTP
// API, a second laptop syncing with the same folder storage, real rsync. Both directions: this
// laptop's edit newer (its version kept the name) and the storage's edit newer (the storage's did).
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AgentStatus } from '../../src-main/common/contract';
import { localEndpoint, storageEndpoint } from '../../src-main/core/sync/endpoint';
import { runSync } from '../../src-main/core/sync/engine';
import { parseStorageUrl } from '../../src-main/core/storage-url';
import { createSandbox, startHeadlessAgent, type AgentSandbox, type RunningAgent } from '../fixtures/headless-agent';
import { readTree } from '../fixtures/laptops';

let sb: AgentSandbox;
beforeEach(() => {
  sb = createSandbox();
});
afterEach(() => sb.dispose());

async function call<T>(agent: RunningAgent, method: string, args: object = {}): Promise<T> {
  const r = await fetch(`${agent.url}/api/call/${method}`, { method: 'POST', headers: { authorization: `Bearer ${agent.token}`, 'content-type': 'application/json' }, body: JSON.stringify(args) });
  const body = (await r.json()) as { ok: boolean; result?: T; error?: { message: string } };
  if (!body.ok) throw new Error(body.error?.message ?? `HTTP ${r.status}`);
  return body.result as T;
}

const status = (agent: RunningAgent) => call<AgentStatus>(agent, 'status.get');

/** Waits for a run that started after `since` (by id) to finish; returns the status then. */
async function runFinished(agent: RunningAgent, since: string | null): Promise<AgentStatus> {
  await expect.poll(async () => {
    const s = (await status(agent)).backup;
    return s.lastRun && s.lastRun.id !== since && s.state !== 'running' ? s.lastRun.outcome : 'running';
  }, { timeout: 30_000, interval: 150 }).not.toBe('running');
  return status(agent);
}

async function backUp(agent: RunningAgent) {
  const before = (await status(agent)).backup.lastRun?.id ?? null;
  await call(agent, 'backup.start');
  return runFinished(agent, before);
}

const t = (s: number) => new Date(Date.UTC(2026, 2, 1, 9, 0, s));
const own = (rel: string) => rel.startsWith('.local') || rel.startsWith('.tabula');

describe.each([
  { newer: 'this laptop', kept: 'local' },
  { newer: 'the storage', kept: 'remote' },
] as const)('a conflict where $newer had the newer edit', { timeout: 120_000 }, ({ kept }) => {
  let agent: RunningAgent;
  let laptopB: { home: string; sync: () => Promise<unknown> };
  const nas = () => path.join(sb.dir, 'nas');
  const mine = 'on this laptop\n';
  const theirs = 'on laptop-b, longer\n';

  beforeEach(async () => {
    fs.mkdirSync(nas()); // a mounted folder: one that is missing is refused as "not mounted"
    sb.writeUserConfig({ storage: { url: nas() }, backup: { watchHome: false, retryMinSeconds: 1, retryMaxSeconds: 2 } });
    agent = await startHeadlessAgent(sb);
    expect((await backUp(agent)).backup.lastRun?.outcome).toBe('success');
    const home = path.join(sb.dir, 'laptop-b');
    fs.mkdirSync(home);
    const o = { home: localEndpoint(home), storage: storageEndpoint(parseStorageUrl(nas()), [], 5), excludes: [], stateDir: path.join(sb.dir, 'b-state'), host: 'laptop-b' };
    laptopB = { home, sync: () => runSync(o) };
    await laptopB.sync();
    const edit = (dir: string, text: string, s: number) => {
      fs.writeFileSync(path.join(dir, 'Documents/notes.txt'), text);
      fs.utimesSync(path.join(dir, 'Documents/notes.txt'), t(s), t(s));
    };
    // Whose edit is newer decides which version keeps the name.
    edit(sb.home, mine, kept === 'local' ? 20 : 10);
    edit(home, theirs, kept === 'local' ? 10 : 20);
    await laptopB.sync();
    const s = await backUp(agent);
    expect(s.backup.conflicts).toHaveLength(1);
    expect(s.backup.conflicts[0]).toMatchObject({ path: 'Documents/notes.txt', kept, from: 'laptop-b' });
    // The inbox says where the storage's version came from.
    expect(s.backup.conflicts[0]!.versions?.storage?.host).toBe('laptop-b');
    // And names this laptop as the run did when it named this laptop's copy.
    const c = s.backup.conflicts[0]!;
    if (kept === 'remote') expect(c.conflictPath.endsWith(`-${c.versions!.thisLaptop!.host!.replace(/[^A-Za-z0-9_-]/g, '_')}.txt`)).toBe(true);
  });

  /** After the choice: this laptop, the storage and laptop-b hold exactly these files. */
  async function expectEverywhere(files: (copy: string) => Record<string, string>) {
    await laptopB.sync();
    const copy = Object.keys(readTree(nas(), own)).find((p) => p.includes('.conflict-')) ?? '';
    const want = files(copy);
    expect(readTree(sb.home, own), 'this laptop').toEqual(want);
    expect(readTree(nas(), own), 'the storage').toEqual(want);
    expect(readTree(laptopB.home, own), 'laptop-b').toEqual(want);
  }

  it.each([
    { keep: 'mine', stays: mine },
    { keep: 'theirs', stays: theirs },
  ] as const)('"keep $keep" leaves one file with that version, everywhere, and the inbox empty', async ({ keep, stays }) => {
    const { conflicts, lastRun } = (await status(agent)).backup;
    await call(agent, 'conflicts.resolve', { path: conflicts[0]!.path, keep });
    // The resolve asks for a run by itself: nobody presses "Back up now".
    const s = await runFinished(agent, lastRun!.id);
    expect(s.backup.lastRun?.outcome).toBe('success');
    expect(s.backup.conflicts).toEqual([]);
    expect(s.backup.state).toBe('idle');
    await expectEverywhere(() => ({ 'Documents/notes.txt': stays }));
    // Settled: the next runs change nothing.
    expect((await backUp(agent)).backup.lastRun?.filesTransferred).toBe(0);
  });

  it('"keep both" leaves both versions under their two names, everywhere, and the inbox empty', async () => {
    const { conflicts, lastRun } = (await status(agent)).backup;
    await call(agent, 'conflicts.resolve', { path: conflicts[0]!.conflictPath, keep: 'both' });
    const s = await runFinished(agent, lastRun!.id);
    expect(s.backup.conflicts).toEqual([]);
    const [named, copied] = kept === 'local' ? [mine, theirs] : [theirs, mine];
    await expectEverywhere((copy) => ({ 'Documents/notes.txt': named, [copy]: copied }));
    expect(conflicts[0]!.conflictPath).toMatch(kept === 'local' ? /-laptop-b\.txt$/ : /\.conflict-/);
  });
});

describe('two conflicts open on one file', { timeout: 120_000 }, () => {
  it('each is settled by its copy; the bare name is refused with the copies named, not settled at random', async () => {
    const nas = path.join(sb.dir, 'nas');
    fs.mkdirSync(nas);
    sb.writeUserConfig({ storage: { url: nas }, backup: { watchHome: false, retryMinSeconds: 1, retryMaxSeconds: 2 } });
    const agent = await startHeadlessAgent(sb);
    await backUp(agent);
    const home = path.join(sb.dir, 'laptop-b');
    fs.mkdirSync(home);
    const b = { home: localEndpoint(home), storage: storageEndpoint(parseStorageUrl(nas), [], 5), excludes: [], stateDir: path.join(sb.dir, 'b-state'), host: 'laptop-b' };
    await runSync(b);
    const edit = (dir: string, text: string, s: number) => {
      fs.writeFileSync(path.join(dir, 'Documents/notes.txt'), text);
      fs.utimesSync(path.join(dir, 'Documents/notes.txt'), t(s), t(s));
    };
    for (const round of [1, 2]) {
      edit(sb.home, `mine ${round}`, round * 100);
      edit(home, `theirs ${round}, newer`, round * 100 + 10);
      await runSync(b);
      await backUp(agent);
    }
    const { conflicts, lastRun } = (await status(agent)).backup;
    expect(conflicts.map((c) => c.path)).toEqual(['Documents/notes.txt', 'Documents/notes.txt']);
    const refused = await call(agent, 'conflicts.resolve', { path: 'Documents/notes.txt', keep: 'theirs' }).catch((e: Error) => e.message);
    expect(refused).toMatch(/^~\/Documents\/notes\.txt has 2 conflicts: name the conflict copy \(~\/Documents\/notes\.conflict-.*, ~\/Documents\/notes\.conflict-.*\)\.$/);
    // The command line says the same: each version where it is, the storage's laptop, and the refusal.
    const listed = await sb.cli(['conflicts']);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toContain(`Documents/notes.txt\n  this laptop’s version: ${conflicts[1]!.conflictPath}\n  the storage’s version (from laptop-b): Documents/notes.txt\n`);
    const bare = await sb.cli(['conflicts', 'resolve', 'Documents/notes.txt', '--keep', 'theirs']);
    expect(bare.code).toBe(1);
    expect(bare.stderr).toMatch(/has 2 conflicts: name the conflict copy/);
    // The second one: keep the storage's (the newest), drop this laptop's second edit.
    const second = conflicts[1]!;
    expect(fs.readFileSync(path.join(sb.home, second.conflictPath), 'utf8')).toBe('mine 2');
    await call(agent, 'conflicts.resolve', { path: second.conflictPath, keep: 'theirs' });
    await runFinished(agent, lastRun!.id);
    const left = (await status(agent)).backup.conflicts;
    expect(left.map((c) => c.conflictPath)).toEqual([conflicts[0]!.conflictPath]);
    expect(readTree(sb.home, own)).toEqual({ 'Documents/notes.txt': 'theirs 2, newer', [conflicts[0]!.conflictPath]: 'mine 1' });
    expect(readTree(nas, own)).toEqual(readTree(sb.home, own));
  });
});

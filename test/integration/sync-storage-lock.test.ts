// The storage-side lock and generation record, on a mounted folder and over a real sshd: one holder at
// a time even when many ask at the same instant, a dead holder taken over, a lost lease noticed; and
// the generation skip, which must never hide a change another laptop made.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { TabulaError } from '../../src-main/common/errors';
import { parseStorageUrl } from '../../src-main/core/storage-url';
import { storageEndpoint, type Endpoint } from '../../src-main/core/sync/endpoint';
import { acquireStorageLock } from '../../src-main/core/sync/storage-lock';
import { createSandbox, type AgentSandbox } from '../fixtures/headless-agent';
import { createWorld, readTree, type World } from '../fixtures/laptops';
import { startSshServer, type SshServer } from '../fixtures/sshd';

/** Whether a process is a child of this one (its parent pid, from /proc). */
function childOfUs(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === process.pid;
  } catch {
    return false; // gone
  }
}

// Over ssh every step is a real connection; on a loaded two-core machine a run takes seconds.
const SSH_TIMEOUT = 120_000;

// One sshd for the file's three ssh groups (started when the first needs it): none stops it.
let shared: Promise<SshServer> | undefined;
const sharedSshd = () => (shared ??= startSshServer());
afterAll(async () => (await shared)?.dispose());

describe.each(['folder', 'ssh'])('storage lock on a %s storage', { timeout: SSH_TIMEOUT }, (kind) => {
  let sshd: SshServer | undefined;
  let w: World;
  let ep: Endpoint;
  beforeAll(async () => {
    if (kind === 'ssh') sshd = await sharedSshd();
  });
  beforeEach(() => {
    w = createWorld(sshd);
    ep = storageEndpoint(parseStorageUrl(sshd ? sshd.url(w.storageDir) : w.storageDir), sshd?.sshOptions ?? [], 5);
  });
  afterEach(() => w.dispose());

  it('gives the lock to exactly one of many asking at once; the others are told who holds it', async () => {
    const tries = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => acquireStorageLock(ep, { host: `lap${i}`, waitSeconds: 0 })));
    const won = tries.filter((t) => t.status === 'fulfilled');
    expect(won).toHaveLength(1);
    const refusals = tries.flatMap((t) => (t.status === 'rejected' ? [t.reason as TabulaError] : []));
    expect(refusals).toHaveLength(7);
    for (const e of refusals) {
      expect(e.code).toBe('already-running');
      expect(e.retryable).toBe(true);
      expect(e.message).toMatch(/is busy: lap\d \(process \d+\) is syncing with it/);
    }
    await won[0]!.value.release();
    const next = await acquireStorageLock(ep, { host: 'later', waitSeconds: 0 });
    await next.release();
    expect(fs.existsSync(path.join(w.storageDir, '.tabula/lock'))).toBe(false);
  });

  it('the loser waits, saying why, and goes on once the holder releases', async () => {
    const first = await acquireStorageLock(ep, { host: 'lap1' });
    const said: string[] = [];
    let got = false;
    const second = acquireStorageLock(ep, { host: 'lap2', waitSeconds: 60, onWaiting: (r) => said.push(r) }).then((l) => ((got = true), l));
    await vi.waitFor(() => expect(said).toEqual([expect.stringMatching(/busy: lap1 .* Waiting for it to finish/)]), { timeout: 30_000, interval: 100 });
    await new Promise((r) => setTimeout(r, 1000));
    expect(got).toBe(false);
    await first.release();
    await (await second).release();
    expect(said).toHaveLength(1);
  });

  it('takes over a holder whose lease ran out, and a dead process on this same machine at once', async () => {
    // A laptop that went to sleep holding the lock: it renews no more.
    const stale = await acquireStorageLock(ep, { host: 'gone', leaseSeconds: 1, renewSeconds: 3600 });
    await new Promise((r) => setTimeout(r, 2100));
    const taker = await acquireStorageLock(ep, { host: 'lap2', waitSeconds: 0 });
    // The old holder notices on its next renewal or write, and stops.
    await expect(stale.bump()).rejects.toThrow(/was taken over by lap2/);
    expect(stale.lost()).toMatch(/taken over/);
    await taker.release();

    const dead = await acquireStorageLock(ep, { host: 'here', pid: 999_999, leaseSeconds: 3600 });
    const again = await acquireStorageLock(ep, { host: 'here', waitSeconds: 0, isAlive: (pid) => pid !== 999_999 });
    await again.release();
    void dead; // never released: its process "died"
  });

  it('a lock this process could not release (the storage away for a moment) does not hold up its own next run for a lease', async () => {
    const first = await acquireStorageLock(ep, { host: 'lap1', leaseSeconds: 120 });
    fs.renameSync(w.storageDir, `${w.storageDir}.away`);
    await first.release();
    fs.renameSync(`${w.storageDir}.away`, w.storageDir);
    expect(fs.existsSync(path.join(w.storageDir, '.tabula/lock'))).toBe(true);
    // The agent's next run, in the same process: its pid is alive, but this lock is one it let go of.
    const said: string[] = [];
    const next = await acquireStorageLock(ep, { host: 'lap1', waitSeconds: 5, onWaiting: (r) => said.push(r) });
    expect(said).toEqual([]);
    await next.release();
    expect(fs.existsSync(path.join(w.storageDir, '.tabula/lock'))).toBe(false);
    // Another laptop is still kept out by a lock this process holds.
    const held = await acquireStorageLock(ep, { host: 'lap1' });
    await expect(acquireStorageLock(ep, { host: 'lap2', waitSeconds: 0 })).rejects.toThrow(/busy: lap1/);
    await held.release();
  });

  it('a lock file it cannot read (damaged, hostile, an absurd lease) is said so, never run, and taken over once a lease passes without a change', async () => {
    const owner = path.join(w.storageDir, '.tabula/lock/owner');
    fs.mkdirSync(path.dirname(owner), { recursive: true });
    for (const content of [`$(touch ${w.dir}/pwned) \`id\` 1 9999999999\n`, Buffer.from([0xff, 0x00, 0x0a, 0x31, 0x20, 0x39, 0x39]), 'evil 1 0123456789abcdef 9999999999\n', 'lap0 12 0123456789abcdef 1\ngarbage 9999999999\n']) {
      fs.writeFileSync(owner, content);
      // Written just now: it may still be someone's, so it is waited for, with a reason a person can act on.
      const err = await acquireStorageLock(ep, { host: 'lap1', waitSeconds: 0 }).catch((e: TabulaError) => e);
      expect(err).toBeInstanceOf(TabulaError);
      expect((err as TabulaError).code).toBe('already-running');
      expect((err as TabulaError).message).toMatch(/The sync lock on the storage .* cannot be read \(\.tabula\/lock\/owner\).* taken over in 1[12]\d s unless it changes\. Try again then\.$/);
      expect(fs.existsSync(path.join(w.dir, 'pwned'))).toBe(false);
      // Unchanged for longer than a lease: nobody renews it, so the sync goes on.
      const past = new Date(Date.now() - 200_000);
      fs.utimesSync(owner, past, past);
      const lock = await acquireStorageLock(ep, { host: 'lap1', waitSeconds: 0 });
      expect(fs.readFileSync(owner, 'utf8')).toMatch(/^lap1 \d+ [0-9a-f]{16} \d+\n$/);
      await lock.release();
      fs.mkdirSync(path.dirname(owner), { recursive: true });
    }
  });

  it("rsync's temporary folder of the old kind (.tabula/tmp/<host>, before 8e9cece) that a killed run left goes with this laptop's next run that holds the lock; another laptop's stays until that laptop's", async () => {
    const a = w.laptop('a');
    a.write('notes.txt', 'kept');
    await a.sync();
    const old = path.join(w.storageDir, '.tabula/tmp');
    for (const host of ['a', 'b']) {
      fs.mkdirSync(path.join(old, host, 'Documents'), { recursive: true });
      fs.writeFileSync(path.join(old, host, 'Documents/.report.txt.AbC123'), 'half a file');
    }
    a.write('more.txt', 'more');
    expect((await a.sync()).counts.pushed).toBe(1);
    expect(fs.readdirSync(old)).toEqual(['b']);
    expect(fs.readFileSync(path.join(old, 'b/Documents/.report.txt.AbC123'), 'utf8')).toBe('half a file');
    const b = w.laptop('b');
    expect((await b.sync()).counts.pulled).toBe(2);
    expect(fs.existsSync(old)).toBe(false);
    expect(fs.existsSync(path.join(w.storageDir, '.tabula/generation'))).toBe(true); // the rest of Tabula's area stays
    expect(w.storageFiles()).toEqual({ 'notes.txt': 'kept', 'more.txt': 'more' });
  });
});

describe.each(['folder', 'ssh'])('generation skip on a %s storage', { timeout: SSH_TIMEOUT }, (kind) => {
  let sshd: SshServer | undefined;
  let w: World;
  beforeAll(async () => {
    if (kind === 'ssh') sshd = await sharedSshd();
  });
  beforeEach(() => {
    w = createWorld(sshd);
  });
  afterEach(() => w.dispose());

  /** Runs a sync and tells whether it walked the storage (the listing is what the skip saves). */
  async function syncWatching(l: ReturnType<World['laptop']>, opts = {}) {
    const lines: string[] = [];
    const orig = console.error;
    process.env.TABULA_SYNC_TRACE = '1';
    console.error = (s: string) => void lines.push(String(s));
    try {
      const summary = await l.sync(opts);
      return { summary, listedStorage: lines.some((x) => x.includes('storage listed')) };
    } finally {
      console.error = orig;
      delete process.env.TABULA_SYNC_TRACE;
    }
  }

  it('a quiet run reads only the generation; a change by another laptop is always seen', async () => {
    const a = w.laptop('a');
    const b = w.laptop('b');
    a.write('notes.txt', 'v1');
    await a.sync();
    await b.sync();
    expect((await syncWatching(a)).listedStorage).toBe(false);
    expect((await syncWatching(b)).listedStorage).toBe(false);

    b.write('notes.txt', 'v2 from b, longer');
    b.write('new.txt', 'new from b');
    await b.sync();
    const seen = await syncWatching(a);
    expect(seen.listedStorage).toBe(true);
    expect(a.files()).toEqual({ 'notes.txt': 'v2 from b, longer', 'new.txt': 'new from b' });
    expect((await syncWatching(a)).listedStorage).toBe(false);
    // b's own write does not hide a's later one from b.
    a.rm('new.txt');
    await a.sync();
    await b.sync();
    expect(b.files()).toEqual({ 'notes.txt': 'v2 from b, longer' });
    if (kind !== 'ssh') return;
    // Over a kept connection the generation is read through a shell kept open beside it (endpoint.ts).
    // That shell dies (a dropped session): the next quiet run reads it anew, and b's change still comes.
    const readers = fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p) && childOfUs(Number(p)) && fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('read -r f'));
    expect(readers).toHaveLength(1);
    process.kill(Number(readers[0]), 'SIGKILL');
    b.write('after.txt', 'written after the reader died');
    await b.sync();
    expect((await syncWatching(a)).listedStorage).toBe(true);
    expect(a.read('after.txt')).toBe('written after the reader died');
    expect((await syncWatching(a)).listedStorage).toBe(false);
  });

  it('both laptops syncing at the same moment: every edit reaches both, a clash becomes a conflict', async () => {
    const a = w.laptop('a');
    const b = w.laptop('b');
    for (let i = 0; i < 300; i++) a.write(`bulk/${i}.txt`, `bulk ${i}`);
    a.write('shared.txt', 'original');
    await a.sync();
    await b.sync();
    a.write('shared.txt', 'edited on a', new Date('2026-03-01T10:00:00Z'));
    b.write('shared.txt', 'edited on b, longer', new Date('2026-03-01T11:00:00Z'));
    for (let i = 0; i < 300; i++) a.write(`from-a/${i}.txt`, `a ${i}`);
    for (let i = 0; i < 300; i++) b.write(`from-b/${i}.txt`, `b ${i}`);
    const [sa, sb] = await Promise.all([a.sync(), b.sync()]);
    await a.sync();
    await b.sync();
    // The one that ran second saw the other's edit of shared.txt: exactly one conflict, nothing overwritten silently.
    expect(sa.conflicts.length + sb.conflicts.length).toBe(1);
    const af = a.files();
    expect(af).toEqual(b.files());
    expect(w.storageFiles()).toEqual(af);
    expect(af['shared.txt']).toBe('edited on b, longer');
    expect(Object.entries(af).filter(([p]) => p.startsWith('shared.conflict-')).map(([, c]) => c)).toEqual(['edited on a']);
    expect(Object.keys(af).filter((p) => p.startsWith('from-a/') || p.startsWith('from-b/'))).toHaveLength(600);
  });

  it('the verification catches a change made on the storage without Tabula', async () => {
    const a = w.laptop('a');
    a.write('notes.txt', 'v1');
    await a.sync();
    expect((await syncWatching(a)).listedStorage).toBe(false);
    // The helpdesk puts a file back directly on the storage: the generation does not move.
    fs.writeFileSync(path.join(w.storageDir, 'restored.txt'), 'from the helpdesk');
    const quiet = await syncWatching(a);
    expect(quiet.listedStorage).toBe(false);
    expect(a.read('restored.txt')).toBeNull();
    // On request…
    const asked = await syncWatching(a, { verify: true });
    expect(asked.listedStorage).toBe(true);
    expect(a.read('restored.txt')).toBe('from the helpdesk');
    // …and once the interval has passed.
    fs.writeFileSync(path.join(w.storageDir, 'second.txt'), 'also out of band');
    expect((await syncWatching(a, { verifyIntervalHours: 1 })).listedStorage).toBe(false);
    expect((await syncWatching(a, { verifyIntervalHours: 0 })).listedStorage).toBe(true);
    expect(a.read('second.txt')).toBe('also out of band');
  });

  it('after a first sync onto an empty storage, an edit there without Tabula that keeps size and time is caught by the verification', async () => {
    const a = w.laptop('a');
    a.write('notes.txt', 'draft one');
    a.write('deep/er/plan.txt', 'plan A');
    const first = await a.sync();
    expect(first.firstSync).toBe(true);
    // Someone edits the storage's copies in place and puts their size and time back (touch -r).
    for (const [rel, text] of [['notes.txt', 'draft two'], ['deep/er/plan.txt', 'plan B']] as const) {
      const [file, ref] = [path.join(w.storageDir, rel), path.join(w.dir, 'ref')];
      execFileSync('touch', ['-r', file, ref]);
      fs.writeFileSync(file, text);
      execFileSync('touch', ['-r', ref, file]);
    }
    await syncWatching(a, { verify: true });
    expect(a.read('notes.txt')).toBe('draft two');
    expect(a.read('deep/er/plan.txt')).toBe('plan B');
  });
  it('a first sync onto an empty storage records only what it put in place: a file put on the storage meanwhile is left as it is and not taken as agreed, even when a new file of the home makes the count match', async () => {
    const a = w.laptop('a');
    a.write('plan.odt', 'mine');
    a.write('notes.txt', 'notes');
    // Between the listing and rsync's walk: something else writes plan.odt on the storage (the first
    // sync, written beside it in its staging folder, does not move its own over it) and a new file
    // appears in the home (rsync's walk sends it): as many names reported as were listed.
    const bin = path.join(w.dir, 'bin');
    fs.mkdirSync(bin);
    const mark = path.join(w.dir, 'meanwhile-done');
    fs.writeFileSync(path.join(bin, 'rsync'), `#!/bin/sh\nif [ ! -e '${mark}' ]; then : > '${mark}'; printf theirs > '${w.storageDir}/plan.odt'; printf new > '${a.home}/arrived.txt'; fi\nexec /usr/bin/rsync "$@"\n`, { mode: 0o755 });
    const pathBefore = process.env.PATH;
    process.env.PATH = `${bin}:${pathBefore}`;
    try {
      await expect(a.sync()).rejects.toThrow(/plan\.odt appeared on the storage .* and was left as it is there; the next sync compares both sides/);
    } finally {
      process.env.PATH = pathBefore;
    }
    expect(fs.existsSync(mark)).toBe(true);
    expect(fs.readFileSync(path.join(w.storageDir, 'notes.txt'), 'utf8')).toBe('notes');
    expect(fs.readFileSync(path.join(w.storageDir, 'plan.odt'), 'utf8')).toBe('theirs');
    // The next full look at the storage sees two versions of plan.odt, neither the agreed one: both stay
    // in the home (before: the storage's taken as a change there and written over the person's).
    await a.sync({ verify: true });
    // The person's files, not Tabula's state (its local versions folder is no place to find one's work).
    const home = Object.values(readTree(a.home, (rel) => rel.startsWith('.local/state/tabula')));
    expect(home).toContain('mine');
    expect(home).toContain('theirs');
    expect(a.read('arrived.txt')).toBe('new');
  });
});

describe.each(['folder', 'ssh'])('two `tabula sync` processes, two homes, one %s storage, at the same moment', { timeout: SSH_TIMEOUT }, (kind) => {
  let sshd: SshServer | undefined;
  let laptops: AgentSandbox[] = [];
  beforeAll(async () => {
    if (kind === 'ssh') sshd = await sharedSshd();
  });
  afterEach(async () => {
    await Promise.all(laptops.map((l) => l.dispose()));
    laptops = [];
  });

  it('never interleave: both exit 0, every file reaches both, the clash is one conflict', async () => {
    laptops = [createSandbox(), createSandbox()];
    const [a, b] = laptops as [AgentSandbox, AgentSandbox];
    const storageDir = path.join(a.dir, 'nas');
    fs.mkdirSync(storageDir);
    for (const l of laptops) l.writeUserConfig({ storage: { url: sshd ? sshd.url(storageDir) : storageDir, sshOptions: sshd?.sshOptions ?? [] } });
    const write = (l: AgentSandbox, rel: string, content: string, at?: Date) => {
      fs.mkdirSync(path.dirname(path.join(l.home, rel)), { recursive: true });
      fs.writeFileSync(path.join(l.home, rel), content);
      if (at) fs.utimesSync(path.join(l.home, rel), at, at);
    };
    write(a, 'shared.txt', 'original');
    for (const l of laptops) {
      const r = await l.cli(['sync']);
      expect(r.code, r.stderr).toBe(0);
    }
    write(a, 'shared.txt', 'edited on a', new Date('2026-03-01T10:00:00Z'));
    write(b, 'shared.txt', 'edited on b, longer', new Date('2026-03-01T11:00:00Z'));
    for (let i = 0; i < 200; i++) write(a, `from-a/${i}.txt`, `a ${i}`);
    for (let i = 0; i < 200; i++) write(b, `from-b/${i}.txt`, `b ${i}`);
    const both = await Promise.all([a.cli(['sync']), b.cli(['sync'])]);
    for (const r of both) expect(r.code, r.stderr).toBe(0);
    // Whoever waited said why, in words.
    for (const r of both) if (r.stderr) expect(r.stderr).toMatch(/^(The storage .* is busy: .* is syncing with it|Another sync is starting on the storage) .*Waiting for it to finish/m);
    expect(both.filter((r) => /^Conflict: shared\.txt/m.test(r.stdout))).toHaveLength(1);
    for (const l of laptops) expect((await l.cli(['sync'])).code).toBe(0);
    const mine = (l: AgentSandbox) => readTree(l.home, (rel) => !['shared.txt', 'from-a', 'from-b', 'Documents'].some((k) => rel === k || rel.startsWith(k)) && !rel.startsWith('shared.'));
    const fa = mine(a);
    expect(fa).toEqual(mine(b));
    expect(fa['shared.txt']).toBe('edited on b, longer');
    expect(Object.entries(fa).filter(([p]) => p.startsWith('shared.conflict-')).map(([, c]) => c)).toEqual(['edited on a']);
    expect(Object.keys(fa).filter((p) => p.startsWith('from-'))).toHaveLength(400);
  });
});

/** Every process under the sshd listener (its connections and what their sessions run), as /proc tells. */
function sessionsOf(sshd: SshServer): number[] {
  const parent = new Map<number, number>();
  for (const p of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
      parent.set(Number(p), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone meanwhile
    }
  }
  const under = new Set([Number(fs.readFileSync(path.join(path.dirname(sshd.identityFile), 'sshd.pid'), 'utf8'))]);
  for (let more = true; more; ) {
    more = false;
    for (const [pid, ppid] of parent) if (under.has(ppid) && !under.has(pid)) more = !!under.add(pid);
  }
  return [...under].slice(1);
}

// How long a quiet run may take over a connection that froze: a fresh connection, the lock, a listing and
// one file pulled, on a loaded two-core machine. Waiting for ssh's keep-alives to give up took 50 s and more.
const FROZEN_RUN_MS = 25_000;

describe('a kept ssh connection that froze (the laptop slept, the network changed, the NAS hung)', { timeout: SSH_TIMEOUT }, () => {
  it("a quiet run does not wait for it: it connects anew within seconds, and another laptop's change comes", async () => {
    const sshd = await sharedSshd();
    const w = createWorld(sshd);
    let frozen: number[] = [];
    try {
      const [a, b] = [w.laptop('a'), w.laptop('b')];
      a.write('notes.txt', 'v1');
      await a.sync();
      await b.sync();
      await a.sync(); // quiet from now on
      await a.sync(); // the generation read through a shell kept on the kept connection
      b.write('after.txt', 'written before the freeze');
      await b.sync();
      // The connection's server side stops: it takes packets and answers nothing, as a dead link.
      frozen = sessionsOf(sshd);
      expect(frozen.length).toBeGreaterThan(0);
      for (const pid of frozen) process.kill(pid, 'SIGSTOP');
      const started = Date.now();
      await a.sync();
      const took = Date.now() - started;
      expect(a.read('after.txt')).toBe('written before the freeze');
      expect(took).toBeLessThan(FROZEN_RUN_MS);
    } finally {
      for (const pid of frozen) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      w.dispose();
    }
  });
});

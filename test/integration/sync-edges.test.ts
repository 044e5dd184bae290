// Edges of the sync a person meets rarely but must survive: rsync killed mid-run, special files,
// huge files, a file changed while the sync runs, and the foreground `tabula sync` command.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { localEndpoint } from '../../src-main/core/sync/endpoint';
import { listEndpoint } from '../../src-main/core/sync/engine';
import { createSandbox, type AgentSandbox } from '../fixtures/headless-agent';
import { createWorld, type World } from '../fixtures/laptops';

let w: World;
beforeEach(() => {
  w = createWorld();
});
afterEach(() => w.dispose());

const rsyncPids = (needle: string) =>
  execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => / rsync /.test(` ${l.trim().split(/\s+/).slice(1).join(' ')} `) && l.includes(needle))
    .map((l) => Number(l.trim().split(/\s+/)[0]));

describe('sync edges', () => {
  it('recovers from rsync being killed mid-transfer: the next run finishes, nothing half-written', async () => {
    const a = w.laptop('a');
    // Four seconds of sending at this rate: time enough to kill it mid-file, however loaded the machine.
    a.write('big.bin', Buffer.alloc(16 << 20, 9));
    for (let i = 0; i < 20; i++) a.write(`small/${i}.txt`, `s${i}`);
    let killed = false;
    const first = a
      .sync({
        bandwidthLimitKBps: 4_000,
        onProgress: (p) => {
          if (!killed && p.phase === 'pushing' && p.bytesDone > 0) {
            killed = true;
            for (const pid of rsyncPids(a.home)) process.kill(pid, 'SIGKILL');
          }
        },
      })
      .then(
        () => null,
        (e: Error) => e,
      );
    const err = await first;
    expect(killed).toBe(true);
    expect(err?.message).toMatch(/stopped before it finished|failed/);
    // Nothing that looks like a user's file was left behind on the storage, and another laptop of the
    // same person syncing before this one's next run brings nothing of it home.
    expect(Object.keys(w.storageFiles()).filter((f) => !f.startsWith('small/') && f !== 'big.bin')).toEqual([]);
    const b = w.laptop('b');
    await b.sync();
    expect(b.files()).toEqual({});
    // The next run of the cut laptop finishes it; the other laptop then gets all of it.
    await a.sync();
    expect(fs.readFileSync(path.join(w.storageDir, 'big.bin')).equals(fs.readFileSync(path.join(a.home, 'big.bin')))).toBe(true);
    expect(w.storageFiles()).toEqual(a.files());
    await b.sync();
    expect(b.files()).toEqual(a.files());
    expect(fs.readdirSync(path.join(w.storageDir, '.tabula')).filter((n) => n.startsWith('first-'))).toEqual([]);
  });

  it('a cut first sync goes on where it stopped: what reached the storage whole is not sent again', async () => {
    const a = w.laptop('a');
    // rsync sends a folder's files before the folders in it, in name order: the big file comes last.
    for (let i = 0; i < 30; i++) a.write(`docs/${i}.txt`, `d${i}`);
    a.write('zz/big.bin', Buffer.alloc(16 << 20, 7));
    let killed = false;
    const err = await a
      .sync({
        bandwidthLimitKBps: 4_000,
        onProgress: (p) => {
          if (!killed && p.phase === 'pushing' && p.bytesDone > 4 << 20) {
            killed = true;
            for (const pid of rsyncPids(a.home)) process.kill(pid, 'SIGKILL');
          }
        },
      })
      .then(() => null, (e: Error) => e);
    expect(killed).toBe(true);
    expect(err?.message).toMatch(/stopped before it finished|failed/);
    expect(w.storageFiles()).toEqual({});
    // What the cut run wrote whole, as the storage holds it: rewritten, a file would change its change time.
    const staged = path.join(w.storageDir, '.tabula/first-a/docs');
    const stamp = (dir: string) => fs.readdirSync(dir).sort().map((f) => `${f} ${fs.statSync(path.join(dir, f), { bigint: true }).ctimeNs}`);
    const before = stamp(staged);
    expect(before).toHaveLength(30);
    const next = await a.sync();
    // All of it placed now, and told so; what had arrived whole was not written again.
    expect(next.counts.pushed).toBe(31);
    expect(next.bytesTransferred).toBeGreaterThan(1 << 20);
    expect(w.storageFiles()).toEqual(a.files());
    expect(stamp(path.join(w.storageDir, 'docs'))).toEqual(before);
    const third = await a.sync();
    expect(third.counts.pushed).toBe(0);
  });

  it('drops saved versions older than the retention, keeps newer ones', async () => {
    const a = w.laptop('a');
    a.write('x.txt', 'one');
    await a.sync();
    a.write('x.txt', 'two!');
    await a.sync();
    a.write('x.txt', 'three');
    await a.sync();
    const versionsDir = path.join(w.storageDir, '.tabula/versions');
    const [oldest, newest] = fs.readdirSync(versionsDir).sort();
    const longAgo = new Date(Date.now() - 40 * 86400_000);
    fs.utimesSync(path.join(versionsDir, oldest!), longAgo, longAgo);
    fs.rmSync(path.join(a.stateDir, 'versions-pruned')); // checked at most hourly
    a.write('y.txt', 'new');
    await a.sync({ versionsRetentionDays: 30 });
    expect(fs.readdirSync(versionsDir)).toEqual([newest]);
  });

  it('skips sockets and pipes with a note, and syncs the rest', async () => {
    const a = w.laptop('a');
    a.write('ok.txt', 'fine');
    a.write('Music/song.ogg', 'la');
    execFileSync('mkfifo', [path.join(a.home, 'a-pipe'), path.join(a.home, 'Music/b-pipe')]);
    const s = await a.sync();
    expect(s.skipped).toEqual([{ path: 'Music/b-pipe', why: 'special file (device, socket or pipe)' }, { path: 'a-pipe', why: 'special file (device, socket or pipe)' }]);
    expect(s.counts.pushed).toBe(2);
    expect(w.storageFiles()).toEqual({ 'ok.txt': 'fine', 'Music/song.ogg': 'la' });
    expect(fs.readdirSync(path.join(w.storageDir, 'Music'))).toEqual(['song.ogg']);
    expect(fs.existsSync(path.join(w.storageDir, 'a-pipe'))).toBe(false);
    a.write('ok.txt', 'fine, edited');
    expect((await a.sync()).counts.pushed).toBe(1);
  });

  it('a first sync whose home holds a name that is not UTF-8 sends the rest and says which; nothing of its early start is left on the storage', async () => {
    const a = w.laptop('a');
    a.write('ok.txt', 'fine');
    a.write('Docs/report.txt', 'report');
    fs.writeFileSync(Buffer.concat([Buffer.from(path.join(a.home, 'Docs/caf')), Buffer.from([0xe9]), Buffer.from('.txt')]), 'latin-1 name');
    const s = await a.sync();
    expect(s.skipped).toEqual([{ path: 'Docs/caf\uFFFD.txt', why: 'the name is not valid UTF-8' }]);
    expect(w.storageFiles()).toEqual({ 'ok.txt': 'fine', 'Docs/report.txt': 'report' });
    expect(fs.readdirSync(path.join(w.storageDir, 'Docs'))).toEqual(['report.txt']);
    expect(fs.readdirSync(path.join(w.storageDir, '.tabula')).filter((n) => n.startsWith('first-'))).toEqual([]);
    expect((await a.sync()).counts.pushed).toBe(0);
  });

  it('a first sync that takes up what a cut one left compares it by content: an edit since that kept size and time is what goes', async () => {
    const a = w.laptop('a');
    a.write('notes.txt', 'the edited words');
    a.write('Docs/other.txt', 'same');
    // As a cut first sync left it: the old words, same size and time, in this laptop's staging folder.
    const staged = path.join(w.storageDir, '.tabula/first-a');
    fs.mkdirSync(path.join(staged, 'Docs'), { recursive: true });
    fs.writeFileSync(path.join(staged, 'notes.txt'), 'the older words!');
    fs.copyFileSync(path.join(a.home, 'Docs/other.txt'), path.join(staged, 'Docs/other.txt'));
    for (const f of ['notes.txt', 'Docs/other.txt']) {
      const t = fs.statSync(path.join(a.home, f)).mtime;
      fs.utimesSync(path.join(staged, f), t, t);
    }
    const s = await a.sync();
    expect(s.counts.pushed).toBe(2);
    expect(w.storageFiles()).toEqual({ 'notes.txt': 'the edited words', 'Docs/other.txt': 'same' });
    expect(fs.existsSync(staged)).toBe(false);
    expect((await a.sync()).counts.pushed).toBe(0);
  });

  it('lists files over 4 GiB with their true size', async () => {
    const a = w.laptop('a');
    const big = path.join(a.home, 'disk.img');
    fs.writeFileSync(big, '');
    fs.truncateSync(big, 5 * 2 ** 30); // sparse: no 5 GiB written
    const listing = await listEndpoint(localEndpoint(a.home), []);
    expect(listing.tree.get('disk.img')).toMatchObject({ type: 'f', size: 5 * 2 ** 30 });
  });

  it('a file edited while the sync runs is neither lost nor mistaken for synced', async () => {
    const a = w.laptop('a');
    const b = w.laptop('b');
    a.write('big.bin', Buffer.alloc(40 << 20, 1));
    a.write('draft.txt', 'first words');
    let edited = false;
    await a.sync({
      bandwidthLimitKBps: 40_000,
      onProgress: (p) => {
        if (!edited && p.phase === 'pushing' && p.bytesDone > 0) {
          edited = true;
          a.write('draft.txt', 'first words, and more written during the sync', new Date(Date.now() + 5000));
        }
      },
    });
    expect(edited).toBe(true);
    await a.sync(); // the edit is seen as a change and goes up
    await b.sync();
    expect(b.read('draft.txt')).toBe('first words, and more written during the sync');
  });
});

describe('tabula sync (foreground, no agent)', () => {
  let sb: AgentSandbox;
  beforeEach(() => {
    sb = createSandbox();
  });
  afterEach(() => sb.dispose());

  it('syncs and exits 0, refuses with exit 2 and a dry-run list, fails with exit 1 when unreachable', async () => {
    const storage = path.join(sb.dir, 'nas');
    fs.mkdirSync(storage);
    for (let i = 0; i < 12; i++) fs.writeFileSync(path.join(sb.home, `f${i}.txt`), `${i}`);
    const ok = await sb.cli(['sync', '--storage', storage]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^Sent 13 items, brought in 0, deleted 0 on the storage and 0 here\./);
    expect(fs.existsSync(path.join(storage, 'f11.txt'))).toBe(true);

    for (let i = 0; i < 10; i++) fs.rmSync(path.join(sb.home, `f${i}.txt`));
    const refused = await sb.cli(['sync', '--storage', storage]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('This sync would delete 10 of 13 files on the storage (more than 50%). Nothing was changed.');
    expect(refused.stderr).toContain('  ~/f0.txt');
    const dry = await sb.cli(['sync', '--storage', storage, '--dry-run', '--force', '--json']);
    expect(JSON.parse(dry.stdout)).toMatchObject({ dryRun: true, deletedRemote: expect.arrayContaining(['f0.txt']) });
    expect(fs.existsSync(path.join(storage, 'f0.txt'))).toBe(true);
    expect((await sb.cli(['sync', '--storage', storage, '--force'])).code).toBe(0);
    expect(fs.existsSync(path.join(storage, 'f0.txt'))).toBe(false);

    const away = await sb.cli(['sync', '--storage', 'ssh://nobody@127.0.0.1:1/srv/x']);
    expect(away.code).toBe(1);
    expect(away.stderr).toMatch(/cannot be reached right now \(connection refused\)/);
  });

  it('run by hand, it sees a change made directly on the storage at once; --quick leaves that to the daily check', async () => {
    const storage = path.join(sb.dir, 'nas');
    fs.mkdirSync(storage);
    for (let i = 0; i < 4; i++) fs.writeFileSync(path.join(sb.home, `f${i}.txt`), `${i}`);
    fs.mkdirSync(path.join(sb.home, 'p'));
    fs.writeFileSync(path.join(sb.home, 'p/x'), 'x');
    expect((await sb.cli(['sync', '--storage', storage])).code).toBe(0);
    // An admin puts a file back and replaces a folder by a file, without Tabula: the generation stays.
    fs.writeFileSync(path.join(storage, 'restored.txt'), 'from the helpdesk');
    expect((await sb.cli(['sync', '--storage', storage, '--quick'])).code).toBe(0);
    expect(fs.existsSync(path.join(sb.home, 'restored.txt'))).toBe(false);
    fs.rmSync(path.join(storage, 'p'), { recursive: true });
    fs.writeFileSync(path.join(storage, 'p'), 'now a file');
    const r = await sb.cli(['sync', '--storage', storage]);
    expect(r.code).toBe(0);
    expect(fs.readFileSync(path.join(sb.home, 'restored.txt'), 'utf8')).toBe('from the helpdesk');
    expect(fs.readFileSync(path.join(sb.home, 'p'), 'utf8')).toBe('now a file');
  });
});

describe('change detection', () => {
  let w2: World;
  beforeEach(() => {
    w2 = createWorld();
  });
  afterEach(() => w2.dispose());

  it('sees an edit made in the same second as the last sync, with the same size', async () => {
    const a = w2.laptop('a');
    const b = w2.laptop('b');
    const t = new Date('2026-03-01T10:00:00.100Z');
    a.write('config.ini', 'mode=A', t);
    await a.sync();
    await b.sync();
    a.write('config.ini', 'mode=B', new Date('2026-03-01T10:00:00.700Z')); // same size, same second
    const s = await a.sync();
    expect(s.pushed).toEqual(['config.ini']);
    await b.sync();
    expect(b.read('config.ini')).toBe('mode=B');
  });

  it('two different same-size edits in the same second are a conflict, not silently equal', async () => {
    const a = w2.laptop('a');
    const b = w2.laptop('b');
    a.write('n.txt', 'base', new Date('2026-03-01T09:00:00Z'));
    await a.sync();
    await b.sync();
    a.write('n.txt', 'AAAA', new Date('2026-03-01T10:00:00.200Z'));
    b.write('n.txt', 'BBBB', new Date('2026-03-01T10:00:00.600Z'));
    await a.sync();
    const s = await b.sync();
    expect(s.conflicts.map((c) => c.path)).toEqual(['n.txt']);
    expect(Object.values(b.files()).sort()).toEqual(['AAAA', 'BBBB']);
  });
});

// The change journal (inotifywait) and the idle run it makes possible: only the folders that changed
// are listed, every edit it reports is synced (deep folders, new folder trees, moves between folders),
// and whatever it cannot vouch for — a queue overflow, a watcher that died — is a full listing.
// Real files, a real inotifywait and the real engine and rsync; the storage is a local folder.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createChangeJournal, type ChangeJournal } from '../../src-main/core/sync/change-journal';
import { localEndpoint, type Endpoint } from '../../src-main/core/sync/endpoint';
import { countLocalChanges, runSync } from '../../src-main/core/sync/engine';

let dir: string;
let home: string;
let storage: string;
let journal: ChangeJournal;
/** What the home's lister was asked to read, run by run: one entry per listing script. */
let listed: string[][];
let problems: string[];

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-journal-'));
  home = path.join(dir, 'home');
  storage = path.join(dir, 'storage');
  for (let i = 0; i < 30; i++) write(`docs/d${i}/note.txt`, `note ${i}`);
  write('deep/a/b/c/d/e/thesis.tex', 'chapter 1');
  write('projects/app/src/main.ts', 'console.log(1)');
  write('.cache/app/state', 'never synced');
  fs.mkdirSync(storage);
  fs.mkdirSync(path.join(dir, 'run'), { mode: 0o700 });
  problems = [];
  journal = createChangeJournal({ home, ignore: [path.join(home, '.cache')], workDir: path.join(dir, 'run'), reportProblem: (m) => problems.push(m) });
});
afterEach(() => {
  journal.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function write(rel: string, content: string) {
  fs.mkdirSync(path.dirname(path.join(home, rel)), { recursive: true });
  fs.writeFileSync(path.join(home, rel), content);
}

/** The home as a real endpoint, with a record of the folders each listing was asked for. */
function spiedHome(): Endpoint {
  const ep = localEndpoint(home);
  return {
    ...ep,
    sh(script, args, input, stdout) {
      // The full listing's script takes the home and pruned folders; the changed folders' one takes the
      // home and two files naming the folders (NUL-separated: one level deep, then whole).
      const folders = () => args.slice(1).flatMap((f) => fs.readFileSync(f, 'utf8').split('\0').filter(Boolean));
      if (script.includes('-printf') && args[0] === home) listed.push(script.includes('files0-from') ? folders() : ['(the whole home)']);
      return ep.sh(script, args, input, stdout);
    },
  };
}

/** One run as the agent makes it: what the journal saw, and a full listing next time if the run failed. */
async function agentRun(opts: { verify?: boolean } = {}) {
  listed = [];
  const taken = await journal.take();
  try {
    return await runSync({ home: spiedHome(), storage: localEndpoint(storage), excludes: ['/.cache/'], stateDir: path.join(dir, 'state'), host: 'laptop-a', localChanges: taken.changes, ...opts });
  } catch (err) {
    taken.failed();
    throw err;
  }
}

const onStorage = (rel: string) => (fs.existsSync(path.join(storage, rel)) ? fs.readFileSync(path.join(storage, rel), 'utf8') : null);

describe('the change journal', () => {
  it('an idle run lists only the folder where a deep edit happened, and syncs it', async () => {
    await agentRun(); // the first run after the agent starts lists everything
    expect(listed).toEqual([['(the whole home)']]);
    expect(onStorage('deep/a/b/c/d/e/thesis.tex')).toBe('chapter 1');

    const quiet = await agentRun();
    expect(listed).toEqual([]); // nothing changed: not a single folder read
    expect(quiet.pushed).toEqual([]);

    fs.appendFileSync(path.join(home, 'deep/a/b/c/d/e/thesis.tex'), ', chapter 2');
    const run = await agentRun();
    expect(listed).toEqual([['./deep/a/b/c/d/e']]);
    expect(run.pushed).toEqual(['deep/a/b/c/d/e/thesis.tex']);
    expect(onStorage('deep/a/b/c/d/e/thesis.tex')).toBe('chapter 1, chapter 2');
  });

  it('does not see what inotify cannot (a write through a hard link from outside the home) until the verification lists everything', async () => {
    const outside = path.join(dir, 'outside.txt');
    fs.linkSync(path.join(home, 'docs/d7/note.txt'), outside);
    await agentRun();
    await agentRun();
    fs.writeFileSync(outside, 'written from outside');
    await agentRun();
    expect(listed).toEqual([]);
    expect(onStorage('docs/d7/note.txt')).toBe('note 7');
    const verified = await agentRun({ verify: true });
    expect(listed).toEqual([['(the whole home)']]);
    expect(verified.pushed).toEqual(['docs/d7/note.txt']);
    expect(onStorage('docs/d7/note.txt')).toBe('written from outside');
  });

  it('sees a folder tree made at once, and moves of files and folders between folders', async () => {
    await agentRun();
    await agentRun();
    // Made faster than a watch can be placed on each new folder: the whole new tree is listed.
    fs.mkdirSync(path.join(home, 'new/x/y/z'), { recursive: true });
    fs.writeFileSync(path.join(home, 'new/x/y/z/deep.txt'), 'deep');
    fs.writeFileSync(path.join(home, 'new/x/top.txt'), 'top');
    fs.renameSync(path.join(home, 'docs/d1/note.txt'), path.join(home, 'docs/d2/moved.txt'));
    fs.renameSync(path.join(home, 'projects/app'), path.join(home, 'deep/a/app'));
    const run = await agentRun();
    expect(listed.flat()).not.toContain('(the whole home)');
    expect(onStorage('new/x/y/z/deep.txt')).toBe('deep');
    expect(onStorage('new/x/top.txt')).toBe('top');
    expect(onStorage('docs/d2/moved.txt')).toBe('note 1');
    expect(onStorage('docs/d1/note.txt')).toBeNull();
    expect(onStorage('deep/a/app/src/main.ts')).toBe('console.log(1)');
    expect(fs.existsSync(path.join(storage, 'projects/app'))).toBe(false);
    expect(run.deletedRemote.sort()).toEqual(['docs/d1/note.txt', 'projects/app/src/main.ts']);

    // A folder deleted with what it holds, and a file that becomes a folder.
    fs.rmSync(path.join(home, 'new/x'), { recursive: true });
    fs.rmSync(path.join(home, 'docs/d3/note.txt'));
    fs.mkdirSync(path.join(home, 'docs/d3/note.txt'));
    fs.writeFileSync(path.join(home, 'docs/d3/note.txt/inside.txt'), 'inside');
    await agentRun();
    expect(fs.existsSync(path.join(storage, 'new/x'))).toBe(false);
    expect(onStorage('docs/d3/note.txt/inside.txt')).toBe('inside');
    // And the next idle run finds nothing left to do: the journal and the archive agree.
    const after = await agentRun();
    expect([after.pushed, after.pulled, after.deletedRemote, after.deletedLocal]).toEqual([[], [], [], []]);
  });

  it('falls back to a full listing after the event queue overflowed, and misses nothing', async () => {
    await agentRun();
    await agentRun();
    // Stop the watcher so that the kernel's queue (16,384 events by default) fills up, as a burst
    // of changes faster than it reads would; then let it read again: it finds Q_OVERFLOW. (The
    // burst goes into a watched folder: a new one would get its watch only once the watcher reads.)
    const max = Number(fs.readFileSync('/proc/sys/fs/inotify/max_queued_events', 'utf8'));
    fs.mkdirSync(path.join(home, 'burst'));
    await agentRun();
    process.kill(journal.watcherPid!, 'SIGSTOP');
    try {
      // Each file made and removed: two events, and nothing left to sync but the one edit.
      for (let i = 0; i <= max / 2; i++) fs.writeFileSync(path.join(home, 'burst', `f${i}`), '');
      for (let i = 0; i <= max / 2; i++) fs.rmSync(path.join(home, 'burst', `f${i}`));
      fs.appendFileSync(path.join(home, 'docs/d9/note.txt'), ' (edited during the burst)');
    } finally {
      process.kill(journal.watcherPid!, 'SIGCONT');
    }
    const run = await agentRun();
    expect(listed).toEqual([['(the whole home)']]);
    expect(onStorage('docs/d9/note.txt')).toBe('note 9 (edited during the burst)');
    expect(run.pushed).toEqual(['docs/d9/note.txt']);
    // The journal goes on: once a run has started after the queue drained (the one after the overflow
    // may have to list in full too, when the overflow swallowed its own marker), an edit is again a
    // one-folder run.
    await agentRun();
    fs.appendFileSync(path.join(home, 'docs/d4/note.txt'), '!');
    await agentRun();
    expect(listed).toEqual([['./docs/d4']]);
    expect(onStorage('docs/d4/note.txt')).toBe('note 4!');
  }, 120_000);

  it('lists the whole home when its watcher has died, and says why', async () => {
    await agentRun();
    await agentRun();
    const pid = journal.watcherPid!;
    process.kill(pid, 'SIGKILL');
    await expect.poll(() => journal.problem).toMatch(/inotifywait stopped/);
    fs.appendFileSync(path.join(home, 'docs/d5/note.txt'), '!');
    await agentRun();
    expect(listed).toEqual([['(the whole home)']]);
    expect(onStorage('docs/d5/note.txt')).toBe('note 5!');
    expect(problems).toEqual([expect.stringMatching(/not tracked .*every sync lists the whole home/)]);
  });

  it('leaves folders never synced unwatched, and their changes start nothing', async () => {
    await agentRun();
    await agentRun();
    const seen: string[] = [];
    journal.onChanged((rel) => seen.push(rel));
    write('.cache/app/more', 'x');
    write('docs/d6/new.txt', 'new');
    await agentRun();
    expect(listed).toEqual([['./docs/d6']]);
    expect(seen.some((p) => p.startsWith('.cache'))).toBe(false);
    expect(seen).toContain('docs/d6/new.txt');
    expect(spawnSync('ls', [path.join(storage, '.cache')]).status).not.toBe(0);
  });

  it('counts what the storage does not have yet by listing only the marked folders, also after a run that failed', async () => {
    await agentRun();
    const count = async () => {
      listed = [];
      return countLocalChanges(spiedHome(), ['/.cache/'], path.join(dir, 'state'), storage, await journal.peek());
    };
    expect(await count()).toBe(0);
    expect(listed).toEqual([]); // nothing marked: not a single folder read

    fs.appendFileSync(path.join(home, 'deep/a/b/c/d/e/thesis.tex'), ', chapter 2');
    write('docs/d3/new.txt', 'new');
    fs.rmSync(path.join(home, 'docs/d5/note.txt'));
    expect(await count()).toBe(3);
    expect(listed.flat().sort()).toEqual(['./deep/a/b/c/d/e', './docs/d3', './docs/d5']);

    // The storage goes away: the run fails, and the next one will list everything; the count still
    // needs only the folders that run had taken.
    fs.renameSync(storage, storage + '-away');
    await expect(agentRun()).rejects.toThrow();
    write('projects/app/src/util.ts', 'export {}');
    expect(await count()).toBe(4);
    expect(listed.flat().sort()).toEqual(['./deep/a/b/c/d/e', './docs/d3', './docs/d5', './projects/app/src']);
    await expect(journal.peek()).resolves.not.toBeNull();
  });
});

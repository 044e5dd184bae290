// The storage's scripts over ssh are bounded: a storage whose listing (its `find`), lock, generation
// change, lock release or versions pruning hangs (a dead disk, a stopped process, while its sshd still
// answers ssh's keep-alives) ends the sync with a reason a person can read instead of holding it for
// ever, and one that sends a listing without end is stopped before it fills this laptop's disk. The
// storage here is a real sshd whose sessions find a hostile `find`, `mkdir` and `mv` first on their PATH
// (ForceCommand); real ssh, real files.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TabulaError } from '../../src-main/common/errors';
import { localEndpoint, storageEndpoint } from '../../src-main/core/sync/endpoint';
import { listToFile } from '../../src-main/core/sync/listing';
import { listVersions } from '../../src-main/core/sync/versions';
import { parseStorageUrl } from '../../src-main/core/storage-url';
import { createWorld, type World } from '../fixtures/laptops';
import { startSshServer, type SshServer } from '../fixtures/sshd';
import crypto from 'node:crypto';
import fsp from 'node:fs/promises';
import os from 'node:os';

// Short here so that the test does not wait minutes; the product's default is IO_TIMEOUT_SECONDS.
const IO_TIMEOUT = 3;
// For a run on a storage that answers: no false stop at load.
const WELL_TIMEOUT = 30;
// Far beyond IO_TIMEOUT: a run still going then is stuck.
const ENDS_WITHIN_MS = 40_000;

function endsOrStuck<T>(what: string, run: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout;
  const stuck = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} was still running ${ENDS_WITHIN_MS / 1000} s after the storage hung`)), ENDS_WITHIN_MS)));
  return Promise.race([run, stuck]).finally(() => clearTimeout(timer));
}

const failureOf = (p: Promise<unknown>) =>
  p.then(
    () => new Error('it finished although the storage misbehaved'),
    (e: unknown) => e,
  );

describe("the storage's find misbehaves", { timeout: 120_000 }, () => {
  let dir: string;
  let sshd: SshServer;
  let w: World;
  /** What the storage's find does: 'hang', 'endless' or '' (the real one). */
  const mode = (m: string) => fs.writeFileSync(path.join(dir, 'mode'), m);
  /** Which commands of the storage's find, mkdir, mv and cat, or which session ("session <ssh's command>"), stop for ever: sh patterns ('' none). */
  const hang = (...patterns: string[]) => fs.writeFileSync(path.join(dir, 'hang'), patterns.map((p) => `${p}\n`).join(''));
  /** Which of the storage's mkdir commands (a sh pattern, '' none) fails, and the reason its error gives. */
  const refuse = (pattern: string, why = '') => (fs.writeFileSync(path.join(dir, 'refuse'), pattern), fs.writeFileSync(path.join(dir, 'refuse-why'), why));
  beforeAll(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'tabula-hostile-find-'));
    fs.mkdirSync(path.join(dir, 'bin'));
    const stopsIf = (name: string, what = '$*') => `#!/bin/sh\nwhile IFS= read -r hang; do case "${name} ${what}" in $hang) kill -STOP $$;; esac; done < '${dir}/hang'\n`;
    // A storage that takes an upload slowly: 64 KiB each 75 ms (8 MiB in 10 s, over twice the bound below).
    const slowly = `[ "$(/usr/bin/cat '${dir}/mode')" = slow ] && exec perl -e 'while (read STDIN, $b, 65536) { print $b; select undef, undef, undef, 0.075 }'\n`;
    fs.writeFileSync(path.join(dir, 'bin/cat'), `${stopsIf('cat')}${slowly}exec /usr/bin/cat "$@"\n`, { mode: 0o755 });
    const refuses = `case "mkdir $*" in $(/usr/bin/cat '${dir}/refuse')) echo "mkdir: cannot create directory '$3': $(/usr/bin/cat '${dir}/refuse-why')" >&2; exit 1;; esac\n`;
    for (const name of ['mkdir', 'mv']) fs.writeFileSync(path.join(dir, 'bin', name), `${stopsIf(name)}${name === 'mkdir' ? refuses : ''}exec /usr/bin/${name} "$@"\n`, { mode: 0o755 });
    fs.writeFileSync(
      path.join(dir, 'bin/find'),
      `${stopsIf('find')}case $(/usr/bin/cat '${dir}/mode') in\nhang) kill -STOP $$;;\nendless) yes 'f 1 1.0 1:1.0 junk' | tr '\\n' '\\0' | head -c 200000000; exit 0;;\nesac\nexec /usr/bin/find "$@"\n`,
      { mode: 0o755 },
    );
    fs.writeFileSync(path.join(dir, 'session'), `${stopsIf('session', '$SSH_ORIGINAL_COMMAND')}PATH='${dir}/bin':$PATH exec sh -c "$SSH_ORIGINAL_COMMAND"\n`, { mode: 0o755 });
    mode('');
    hang('');
    refuse('');
    sshd = await startSshServer({ extraConfig: [`ForceCommand ${path.join(dir, 'session')}`] });
  });
  afterAll(async () => {
    await sshd?.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  afterEach(() => {
    // The stopped commands go with the test, and the sessions that ran them.
    sshd.endSessions();
    mode('');
    hang('');
    refuse('');
    w?.dispose();
  });

  /** Laptop a, in a world of its own over this storage, with one file to send. */
  const laptopWithNotes = () => {
    w = createWorld(sshd);
    const a = w.laptop('a');
    a.write('notes.txt', 'kept');
    return a;
  };
  type Laptop = ReturnType<typeof laptopWithNotes>;
  const stoppedAnswering = (err: unknown) => {
    expect(err).toBeInstanceOf(TabulaError);
    expect((err as TabulaError).code).toBe('storage-unreachable');
    expect((err as TabulaError).message).toMatch(/^The storage ssh:\/\/\S+ stopped answering \(nothing came back for 3 seconds\)/);
    expect((err as TabulaError).retryable).toBe(true);
  };
  const failedSync = (a: Laptop) => endsOrStuck('the sync', failureOf(a.sync({ ioTimeoutSeconds: IO_TIMEOUT })));
  /**
   * The storage well again: the next sync sends the file. Its bound is roomy: that it goes through is
   * the point, and at load a well storage can be silent for 3 s.
   */
  const nextSyncSends = async (a: Laptop) => {
    [mode, hang, refuse].forEach((f) => f(''));
    expect((await endsOrStuck('the next sync', a.sync({ ioTimeoutSeconds: WELL_TIMEOUT }))).counts.pushed).toBe(1);
    expect(w.storageFiles()).toEqual({ 'notes.txt': 'kept' });
  };

  it('a find that hangs ends the sync saying the storage stopped answering; the next sync, with the storage well again, goes through', async () => {
    const a = laptopWithNotes();
    mode('hang');
    stoppedAnswering(await failedSync(a));
    await nextSyncSends(a);
  });

  it('a listing without end is stopped at its cap, named, and leaves no file behind', async () => {
    w = createWorld(sshd);
    const ep = storageEndpoint(parseStorageUrl(sshd.url(w.storageDir)), sshd.sshOptions, 5, w.dir);
    const file = path.join(w.dir, 'listing');
    mode('endless');
    const err = await endsOrStuck('the listing', failureOf(listToFile(ep, [], file, { silentSeconds: 30, maxBytes: 1024 * 1024 })));
    expect(err).toBeInstanceOf(TabulaError);
    expect((err as TabulaError).code).toBe('storage-invalid');
    expect((err as TabulaError).message).toMatch(/^The storage ssh:\/\/\S+ sent a list of its files longer than 1048576 bytes, so Tabula stopped listing it/);
    expect(fs.readdirSync(w.dir).filter((f) => f.startsWith('listing'))).toEqual([]);
    await ep.close();
  });

  it('an upload the storage takes slowly but steadily is not stopped for silence, though nothing comes back', async () => {
    w = createWorld(sshd);
    const ep = storageEndpoint(parseStorageUrl(sshd.url(w.storageDir)), sshd.sshOptions, 5, w.dir);
    const names = path.join(w.dir, 'names');
    fs.writeFileSync(names, crypto.randomBytes(8 * 1024 * 1024)); // far more than ssh and the sockets hold
    mode('slow');
    const fd = fs.openSync(names, 'r');
    try {
      const r = await endsOrStuck('the upload', ep.sh('cat > "$1"', [path.join(w.storageDir, 'names')], fd, undefined, { silentSeconds: 4 }));
      expect(r.stopped).toBeUndefined();
      expect(r.code).toBe(0);
    } finally {
      fs.closeSync(fd);
      await ep.close();
    }
    expect(fs.readFileSync(path.join(w.storageDir, 'names')).equals(fs.readFileSync(names))).toBe(true);
  });

  it('a sync lock that hangs while being taken ends the sync saying the storage stopped answering; the next sync goes through', async () => {
    const a = laptopWithNotes();
    hang('mkdir .tabula/lock');
    stoppedAnswering(await failedSync(a));
    await nextSyncSends(a);
  });

  it("a storage that hangs while the run marks its first write ends the sync; the lock is left to its lease, and this laptop's next sync takes it over at once", async () => {
    const a = laptopWithNotes();
    hang('mv -f .tabula/generation.new .tabula/generation');
    stoppedAnswering(await failedSync(a));
    expect(w.storageFiles()).toEqual({}); // nothing was written before the mark
    expect(fs.existsSync(path.join(w.storageDir, '.tabula/lock'))).toBe(true); // not released: the storage did not answer
    await nextSyncSends(a);
  });

  for (const [why, said] of [
    ['hangs', /^The storage ssh:\/\/\S+ stopped answering \(nothing came back for 3 seconds\)/],
    ['No space left on device', /^The storage ssh:\/\/\S+ is full, so the backup could not finish\. Free some space there/],
    ['Permission denied', /^Tabula may not write to the storage ssh:\/\/\S+ \(permission denied\)\. Ask your helpdesk to check the folder's permissions\.$/],
  ] as const) {
    it(`a storage that cannot make rsync's temporary folder (${why}) ends the sync saying so; nothing is lost, and the next sync goes through`, async () => {
      const a = laptopWithNotes();
      if (why === 'hangs') hang('mkdir -p -- .tabula/tmp-a');
      else refuse('mkdir -p -- .tabula/tmp-a', why);
      const err = await failedSync(a);
      expect(err).toBeInstanceOf(TabulaError);
      expect((err as TabulaError).message).toMatch(said);
      expect(a.read('notes.txt')).toBe('kept');
      expect(w.storageFiles()).toEqual({});
      await nextSyncSends(a);
    });
  }

  it('a lock release that hangs ends the sync with what it sent kept; the next sync goes through', async () => {
    const a = laptopWithNotes();
    hang('mv -f -- .tabula/lock *');
    expect((await endsOrStuck('the sync', a.sync({ ioTimeoutSeconds: IO_TIMEOUT }))).counts.pushed).toBe(1);
    expect(w.storageFiles()).toEqual({ 'notes.txt': 'kept' });
    hang('');
    a.write('notes.txt', 'kept, then edited');
    expect((await endsOrStuck('the next sync', a.sync({ ioTimeoutSeconds: WELL_TIMEOUT }))).counts.pushed).toBe(1);
    expect(w.storageFiles()).toEqual({ 'notes.txt': 'kept, then edited' });
  });

  it("listing a file's versions on a storage that hangs ends saying so", async () => {
    w = createWorld(sshd);
    const ep = storageEndpoint(parseStorageUrl(sshd.url(w.storageDir)), sshd.sshOptions, 5, w.dir);
    hang('session *report.txt*');
    const err = await endsOrStuck('the listing of versions', failureOf(listVersions(ep, 'Documents/report.txt', { ioTimeoutSeconds: IO_TIMEOUT })));
    expect(err).toBeInstanceOf(TabulaError);
    expect((err as TabulaError).message).toMatch(/^The storage ssh:\/\/\S+ stopped answering \(nothing came back for 3 seconds\), so its versions could not be listed\. Try again once it answers\.$/);
    await ep.close();
  });

  it('a lock release that hangs is the only wait: the pruning of old versions, due, is left to a later run instead of waiting as long again', async () => {
    const a = laptopWithNotes();
    const old = path.join(w.storageDir, '.tabula/versions/2026-01-01T000000Z');
    fs.mkdirSync(old, { recursive: true }); // something to prune: older than the 30 days kept
    fs.utimesSync(old, new Date('2026-01-01'), new Date('2026-01-01'));
    hang('mv -f -- .tabula/lock *', 'find . -mindepth 1 -maxdepth 1 -type d -mmin *');
    expect((await endsOrStuck('the sync', a.sync({ ioTimeoutSeconds: IO_TIMEOUT }))).counts.pushed).toBe(1);
    // What the storage holds stopped: the release's mv alone, no prune's find.
    const stopped = spawnSync('pgrep', ['-a', '-r', 'T', '-f', `${dir}/bin/`], { encoding: 'utf8' }).stdout;
    expect(stopped).toMatch(/bin\/mv -f -- \.tabula\/lock /);
    expect(stopped).not.toMatch(/bin\/find/);
    expect(fs.existsSync(old)).toBe(true);
    hang('');
    a.write('notes.txt', 'kept, then edited');
    expect((await endsOrStuck('the next sync', a.sync({ ioTimeoutSeconds: WELL_TIMEOUT }))).counts.pushed).toBe(1);
    expect(fs.existsSync(old)).toBe(false); // pruned then
  });

  it('pruning old versions on a storage that hangs ends the sync, its files sent', async () => {
    const a = laptopWithNotes();
    fs.mkdirSync(path.join(w.storageDir, '.tabula/versions/2026-01-01T000000Z'), { recursive: true }); // something to prune
    hang('find . -mindepth 1 -maxdepth 1 -type d -mmin *');
    expect((await endsOrStuck('the sync', a.sync({ ioTimeoutSeconds: IO_TIMEOUT }))).counts.pushed).toBe(1);
    expect(w.storageFiles()).toEqual({ 'notes.txt': 'kept' });
  });
});

describe('the cap on what a storage script may send', () => {
  it('holds even when all of it came before the watch looked (a fast storage)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-cap-'));
    const fd = fs.openSync(path.join(dir, 'out'), 'w');
    try {
      const r = await localEndpoint(dir).sh('head -c 3000000 /dev/zero', [], undefined, fd, { maxBytes: 1 << 20 });
      expect(r.stopped).toEqual({ maxBytes: 1 << 20 });
      expect(r.code).toBeNull();
    } finally {
      fs.closeSync(fd);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

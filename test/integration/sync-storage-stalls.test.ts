// The storage's side of a transfer stops answering while the ssh connection stays up: its rsync is
// stopped (SIGSTOP, as a storage swapping to death or a hung disk would leave it) or one of its
// processes dies. sshd still answers ssh's keep-alives, so only rsync's own I/O timeout can tell.
// The run must end with a reason a person can read, record nothing as synced that did not arrive,
// and the next run must finish the job (real rsync over a real sshd).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TabulaError } from '../../src-main/common/errors';
import type { World } from '../fixtures/laptops';
import { useWorldOverSsh } from '../fixtures/world-over-ssh';

const none = { pulled: 0, pushed: 0, deletedLocal: 0, deletedRemote: 0 };
// Short here so that the test does not wait minutes; the product's default is in engine.ts.
const IO_TIMEOUT = 4;
// How long a run may take once the storage went silent, far beyond IO_TIMEOUT: a run still going then is stuck.
const ENDS_WITHIN_MS = 45_000;

/** The storage's rsync processes (`rsync --server …` with this storage folder in their command line), oldest first. */
function storageRsyncs(storageDir: string): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (fs.statSync(`/proc/${entry}`).uid !== process.getuid!()) continue;
      const args = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (path.basename(args[0]!) === 'rsync' && args.includes('--server') && args.some((a) => a.startsWith(storageDir))) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out.sort((x, y) => x - y);
}

const signal = (pids: number[], sig: NodeJS.Signals) => {
  for (const pid of pids) {
    try {
      process.kill(pid, sig);
    } catch {
      // gone
    }
  }
};

/** The run's outcome, or a failure naming the stuck run when it has not ended within ENDS_WITHIN_MS. */
function endsOrStuck<T>(run: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout;
  const stuck = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`the sync was still running ${ENDS_WITHIN_MS / 1000} s after the storage went silent`)), ENDS_WITHIN_MS)));
  return Promise.race([run, stuck]).finally(() => clearTimeout(timer));
}

const random = (bytes: number) => crypto.randomBytes(bytes).toString('base64');

describe('the storage stops answering in the middle of a transfer', { timeout: 150_000 }, () => {
  const { world } = useWorldOverSsh();
  let w: World;
  const touched: number[] = [];
  beforeEach(() => {
    w = world();
  });
  // Whatever the test stopped goes, so that nothing outlives it (a stuck run ends with it); before
  // the world's own hook (hooks after a test run last first).
  afterEach(() => signal(touched.splice(0), 'SIGKILL'));

  /**
   * Syncs `laptop` with a slow transfer (bandwidth limited) and does `what` to the storage's rsync once
   * it runs in `phase`. Resolves with the error the run ended with.
   */
  async function syncWhileStorage(laptop: ReturnType<World['laptop']>, phase: 'pulling' | 'pushing', what: 'stopped' | 'one killed', bandwidthLimitKBps = 1000): Promise<TabulaError> {
    let acted = false;
    let watching: NodeJS.Timeout | null = null;
    const act = () => {
      const pids = storageRsyncs(w.storageDir);
      if (acted || !pids.length) return;
      acted = true;
      if (watching) clearInterval(watching);
      touched.push(...pids);
      // Stopped: every process of it. Killed: the newest (the receiving side's child on a push), the other stays.
      if (what === 'stopped') signal(pids, 'SIGSTOP');
      else signal(pids.slice(-1), 'SIGKILL');
    };
    let bytes = 0;
    const run = laptop.sync({
      bandwidthLimitKBps,
      ioTimeoutSeconds: IO_TIMEOUT,
      onProgress: (p) => {
        if (p.phase !== phase) return;
        bytes = Math.max(bytes, p.bytesDone);
        // Once data flows: the storage's rsync is up and in the middle of the file.
        watching ??= setInterval(() => bytes > 0 && act(), 250);
      },
    });
    try {
      const err = await endsOrStuck(run).then(
        () => new Error('the sync finished although the storage stopped answering'),
        (e: unknown) => e,
      );
      expect(acted).toBe(true);
      expect(err).toBeInstanceOf(TabulaError);
      return err as TabulaError;
    } finally {
      if (watching) clearInterval(watching);
    }
  }

  // 12 MB fill the buffers between the two rsyncs (ssh's window is 2 MB), and then rsync's own --timeout
  // could tell; 300 KB fit in them, and the laptop's rsync goes on writing its keep-alives there for ever.
  for (const [size, kb, kbps] of [['12 MB', 9_000, 1000], ['300 KB', 225, 100]] as const) {
    it(`push of a ${size} file, the storage's rsync stopped: the run ends saying the storage stopped answering, and the next run sends the file`, async () => {
      const a = w.laptop('a');
      a.write('notes.txt', 'kept');
      await a.sync();
      const big = random(kb * 1000); // base64: 4/3 of it
      a.write('video/big.txt', big);

      const err = await syncWhileStorage(a, 'pushing', 'stopped', kbps);
      expect(err.code).toBe('storage-unreachable');
      expect(err.message).toMatch(/stopped answering/);
      expect(err.message).toMatch(/nothing came back for \d+ seconds/);
      expect(err.retryable).toBe(true);
      signal(touched.splice(0), 'SIGKILL');

      // Nothing recorded as sent: the next run sends it whole, and nothing is lost at home.
      expect(w.storageFiles()['video/big.txt']).not.toBe(big);
      const next = await a.sync();
      expect(next.pushed).toContain('video/big.txt');
      expect(w.storageFiles()).toEqual({ 'notes.txt': 'kept', 'video/big.txt': big });
      expect(a.files()).toEqual({ 'notes.txt': 'kept', 'video/big.txt': big });
      expect((await a.sync()).counts).toEqual(none);
    });
  }

  it('a slow but live transfer is not cut: a file that takes many times the timeout to send arrives whole', async () => {
    const a = w.laptop('a');
    const b = w.laptop('b');
    const big = random(750_000); // 1 MB at 100 KB/s: ~10 s, more than twice IO_TIMEOUT
    a.write('video/big.txt', big);
    const started = Date.now();
    const up = await a.sync({ bandwidthLimitKBps: 100, ioTimeoutSeconds: IO_TIMEOUT });
    expect(Date.now() - started).toBeGreaterThan(2 * IO_TIMEOUT * 1000); // it was slow indeed
    expect(up.pushed).toEqual(['video/big.txt']);
    const down = await b.sync({ bandwidthLimitKBps: 100, ioTimeoutSeconds: IO_TIMEOUT });
    expect(down.pulled).toEqual(['video/big.txt']);
    expect(b.files()).toEqual({ 'video/big.txt': big });
  });

  it("pull, the storage's rsync stopped: the run ends, the home keeps what it had, and the next run brings the file", async () => {
    const a = w.laptop('a');
    const b = w.laptop('b');
    a.write('notes.txt', 'kept');
    await a.sync();
    await b.sync();
    const big = random(9_000_000);
    a.write('video/big.txt', big);
    await a.sync();

    const err = await syncWhileStorage(b, 'pulling', 'stopped');
    expect(err.code).toBe('storage-unreachable');
    expect(err.message).toMatch(/stopped answering/);
    signal(touched.splice(0), 'SIGKILL');

    expect(b.read('video/big.txt')).toBeNull(); // never half a file in its place
    const next = await b.sync();
    expect(next.pulled).toContain('video/big.txt');
    expect(next.counts.deletedRemote).toBe(0);
    expect(b.files()).toEqual({ 'notes.txt': 'kept', 'video/big.txt': big });
    expect(w.storageFiles()).toEqual({ 'notes.txt': 'kept', 'video/big.txt': big });
    expect((await b.sync()).counts).toEqual(none);
  });

  it("push, one of the storage's rsync processes killed while ssh stays up: the run ends, and the next run sends the file", async () => {
    const a = w.laptop('a');
    a.write('notes.txt', 'kept');
    await a.sync();
    const big = random(9_000_000);
    a.write('video/big.txt', big);

    const err = await syncWhileStorage(a, 'pushing', 'one killed');
    expect(err.code).toBe('storage-unreachable'); // "cannot be reached right now (connection unexpectedly closed)"
    expect(err.retryable).toBe(true);
    signal(touched.splice(0), 'SIGKILL');

    const next = await a.sync();
    expect(next.pushed).toContain('video/big.txt');
    expect(w.storageFiles()).toEqual({ 'notes.txt': 'kept', 'video/big.txt': big });
    expect((await a.sync()).counts).toEqual(none);
  });
});

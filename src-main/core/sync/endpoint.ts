// The two ends of a sync, behind one shape: a folder on this machine or a folder over ssh. Both run
// the same POSIX sh scripts (listing, pruning versions) and give rsync its root and transport options.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { IO_TIMEOUT_SECONDS } from '../rsync';
import type { Storage } from '../storage-url';
import { closeSharedConnection, rsyncTarget, sharedConnection, shellQuote, sshArgs, sshCommand, sshDestination } from '../storage-url';

export interface ShellResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
  /** Set when the script was stopped for passing one of its {@link ShellBounds}. */
  stopped?: { silentSeconds: number } | { maxBytes: number };
}

/**
 * What a script on the storage may do before it is stopped: a broken or hostile storage can send
 * output without end (filling this disk or memory) or nothing at all for ever (a dead disk, a stopped
 * process, while its sshd still answers ssh's keep-alives).
 */
export interface ShellBounds {
  /**
   * Stopped once it has sent nothing (output or errors) and read nothing of its input for this long.
   * Absent: no limit here, {@link IO_TIMEOUT_SECONDS} over ssh.
   */
  silentSeconds?: number;
  /** Stopped once its output passes this many bytes. */
  maxBytes?: number;
}

/** What a storage's script may write to memory, and to a file (a listing: ~100 bytes a file, 10 million files). */
export const STORAGE_OUTPUT_MAX = { memory: 64 * 1024 * 1024, file: 1024 * 1024 * 1024 };
/** How much of a script's stderr is kept. */
const STDERR_MAX = 256 * 1024;

export interface Endpoint {
  display: string;
  /** The folder itself (path on its machine). */
  path: string;
  /** rsync's spelling of the folder, with a trailing slash. */
  rsyncRoot: string;
  /** Options rsync needs to reach it (-e ssh …). */
  rsyncOptions: string[];
  /**
   * The same for one long transfer (a first sync's): over ssh, a connection of its own. Through the kept
   * one, its master process relays every byte once more (`rsync -a` of 100,000 files here: 11.1 s on its
   * own connection against 12.8 s through a kept one, on average).
   */
  bulkRsyncOptions: string[];
  isRemote: boolean;
  /**
   * Runs a POSIX sh script there with positional arguments (never interpolated into the script).
   * `stdout`: a file descriptor that receives the output instead of memory (a listing of 1M entries);
   * `input` likewise a descriptor to read from.
   */
  sh(script: string, args: string[], input?: Buffer | number, stdout?: number, bounds?: ShellBounds): Promise<ShellResult>;
  /**
   * The first line of a small file there (at most 200 bytes read; '' when it is missing). Over a kept ssh
   * connection, through a shell kept open beside it (see {@link openReader}): no new session, shell and
   * process for each read.
   */
  readHead(file: string): Promise<string>;
  /** Ends the connection kept open for the next use (ssh's shared connection), if there is one. */
  close(): Promise<void>;
}

function collect(cmd: string, args: string[], input?: Buffer | number, stdout?: number, bounds: ShellBounds = {}): Promise<ShellResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: [typeof input === 'number' ? input : input ? 'pipe' : 'ignore', stdout ?? 'pipe', 'pipe'] });
    if (input && typeof input !== 'number') {
      child.stdin!.on('error', () => {}); // the script may exit before reading it all; its exit code says why
      child.stdin!.end(input);
    }
    const out: Buffer[] = [];
    let [outBytes, errBytes, stderr] = [0, 0, ''];
    let stopped: ShellResult['stopped'];
    const stop = (why: NonNullable<ShellResult['stopped']>) => {
      stopped ??= why;
      child.kill('SIGKILL');
    };
    const maxBytes = bounds.maxBytes ?? Infinity;
    child.stdout?.on('data', (c: Buffer) => {
      outBytes += c.length;
      if (outBytes > maxBytes) stop({ maxBytes });
      else out.push(c);
    });
    child.stderr!.on('data', (c: Buffer) => {
      errBytes += c.length;
      if (stderr.length < STDERR_MAX) stderr += c.toString('utf8', 0, Math.min(c.length, STDERR_MAX - stderr.length));
    });
    // Output to a file is watched by its size; silence is judged on output, errors and how far an input
    // file was read (an upload answers with nothing but taking it) together.
    let [seen, quietSince] = [-1, Date.now()];
    const watch =
      bounds.silentSeconds || (stdout !== undefined && bounds.maxBytes)
        ? setInterval(() => {
            const size = stdout === undefined ? outBytes : fs.fstatSync(stdout).size;
            if (size > maxBytes) return stop({ maxBytes });
            const now = Date.now();
            const moved = size + errBytes + (typeof input === 'number' ? readSoFar(input) : 0);
            if (moved !== seen) [seen, quietSince] = [moved, now];
            else if (bounds.silentSeconds && now - quietSince >= bounds.silentSeconds * 1000) stop({ silentSeconds: bounds.silentSeconds });
          }, Math.min(1000, Math.max(100, ((bounds.silentSeconds ?? 1) * 1000) / 8)))
        : null;
    let over = false;
    const done = (r: ShellResult) => {
      if (over) return;
      over = true;
      if (watch) clearInterval(watch);
      resolve(stopped ? { ...r, stopped } : r);
    };
    child.on('error', (err) => done({ code: null, stdout: Buffer.alloc(0), stderr: String(err) }));
    child.on('close', (code) => {
      // Over the cap before the watch's next look (a fast storage sends megabytes between two): still over.
      if (!stopped && stdout !== undefined && bounds.maxBytes && fs.fstatSync(stdout).size > bounds.maxBytes) stopped = { maxBytes: bounds.maxBytes };
      done({ code: stopped ? null : code, stdout: Buffer.concat(out), stderr });
    });
    // Stopped: ended now, not when its pipes close. Over a shared connection (ControlMaster) ssh handed
    // them to the connection's master, which keeps them while the storage's side of the session lives.
    child.on('exit', () => {
      if (!stopped) return;
      child.stdout?.destroy();
      child.stderr!.destroy();
      done({ code: null, stdout: Buffer.concat(out), stderr });
    });
  });
}

/** How far a file given as a child's input was read: the child shares our descriptor's offset. */
function readSoFar(fd: number): number {
  try {
    return Number(/^pos:\s*(\d+)/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

export function localEndpoint(dir: string, display = dir): Endpoint {
  return {
    display,
    path: dir,
    rsyncRoot: dir.endsWith('/') ? dir : dir + '/',
    rsyncOptions: [],
    bulkRsyncOptions: [],
    isRemote: false,
    sh: (script, args, input, stdout, bounds) => collect('sh', ['-c', script, 'sh', ...args], input, stdout, bounds),
    readHead: (file) => Promise.resolve(readHeadHere(file)),
    close: () => Promise.resolve(),
  };
}

function readHeadHere(file: string): string {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch {
    return '';
  }
  try {
    const buf = Buffer.alloc(200);
    return buf.toString('utf8', 0, fs.readSync(fd, buf, 0, 200, 0)).split('\n')[0]!;
  } catch {
    return '';
  } finally {
    fs.closeSync(fd);
  }
}

/** The head of a file through `sh` there: one session (and shell, and `head`) per read. */
async function readHeadBySh(sh: Endpoint['sh'], file: string): Promise<string> {
  const r = await sh('head -c 200 -- "$1" 2>/dev/null; echo', [file]);
  return r.code === 0 ? (r.stdout.toString('utf8').split('\n')[0] ?? '') : '';
}

interface Reader {
  /** Rejects with {@link ReaderSilent} when no answer came in time. */
  read(file: string): Promise<string>;
  close(): void;
}

class ReaderSilent extends Error {}

/**
 * How long a reader kept from an earlier read may take to answer (it answers in ~1 ms): past it, the
 * connection under it is taken for dead (the laptop slept, the network changed), not waited for until
 * ssh's keep-alives give up on it (45 s and more). A new reader has the connect timeout: it may connect.
 */
const KEPT_READER_REPLY_MS = 3000;

/**
 * The agent reads the storage's generation before each run (nothing changed: that read is the run).
 * A new ssh session on the kept connection costs ~30 ms (ssh's start, sshd's session, two shells and
 * `head`); a shell kept open on it answers in ~1 ms. One per kept connection, for this process; a
 * reader that fails or stays silent (see {@link KEPT_READER_REPLY_MS}) is closed, and that read made the
 * usual way; a silent one's connection is stopped first, so that the read connects anew. It holds the
 * process open for nothing: a process that is done exits, and the shell with it.
 */
const readers = new Map<string, Reader>();

function openReader(command: string[], timeoutMs: number, onGone: () => void): Reader {
  // Each answer ends with a line of its own no file can forge.
  const end = crypto.randomBytes(12).toString('hex');
  const script = `while IFS= read -r f; do head -c 200 -- "$f" 2>/dev/null; printf '\\n%s\\n' ${end}; done`;
  const child = spawn(command[0]!, [...command.slice(1), ['sh', '-c', script].map(shellQuote).join(' ')], { stdio: ['pipe', 'pipe', 'ignore'] });
  child.unref();
  for (const s of [child.stdin, child.stdout] as (Writable | Readable | null)[]) (s as unknown as { unref?: () => void } | null)?.unref?.();
  let buf = '';
  let waiting: { resolve: (s: string) => void; reject: (e: Error) => void; timer: NodeJS.Timeout } | null = null;
  let queue: Promise<unknown> = Promise.resolve();
  let gone = false;
  let answered = false;
  const fail = (why: string, silent = false) => {
    if (!gone) {
      gone = true;
      onGone();
      child.kill();
    }
    if (waiting) {
      clearTimeout(waiting.timer);
      waiting.reject(silent ? new ReaderSilent(why) : new Error(why));
      waiting = null;
    }
  };
  child.on('error', () => fail('the reader did not start'));
  child.on('close', () => fail('the reader ended'));
  child.stdin!.on('error', () => fail('the reader ended'));
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (text: string) => {
    buf += text;
    const at = buf.indexOf(`\n${end}\n`);
    if (at < 0) return buf.length > 4096 ? fail('an answer too long') : undefined;
    const head = buf.slice(0, at);
    buf = buf.slice(at + end.length + 2);
    const w = waiting;
    waiting = null;
    answered = true;
    if (w) {
      clearTimeout(w.timer);
      w.resolve(head.split('\n')[0]!);
    }
  });
  const ask = (file: string) =>
    new Promise<string>((resolve, reject) => {
      if (gone) return reject(new Error('the reader ended'));
      // Held (not unref'd): it keeps the process up while an answer is awaited.
      const timer = setTimeout(() => fail('no answer in time', true), answered ? Math.min(timeoutMs, KEPT_READER_REPLY_MS) : timeoutMs);
      waiting = { resolve, reject, timer };
      child.stdin!.write(`${file}\n`);
    });
  return {
    read(file) {
      const r = queue.then(() => ask(file));
      queue = r.catch(() => {});
      return r;
    },
    close: () => fail('closed'),
  };
}

/**
 * With `controlDir`, one ssh connection serves the whole run and stays open `persistSeconds` after its
 * last use: the CLI's default keeps it for a script's next command; the agent keeps it from one run to
 * the next and closes it when it stops.
 */
export function storageEndpoint(storage: Storage, sshOptions: string[], connectTimeoutSeconds: number, controlDir?: string, persistSeconds = 30): Endpoint {
  if (storage.kind === 'local') return localEndpoint(storage.path, storage.display);
  const shared = controlDir ? sharedConnection(storage, controlDir, persistSeconds) : null;
  const ssh = sshArgs(storage, sshOptions, connectTimeoutSeconds, shared);
  // ssh joins its arguments into one command line for the remote shell: quote each one. Every script is
  // bounded: a storage that stops answering (a dead disk, a stopped process, while its sshd still answers
  // ssh's keep-alives) ends it as it ends a transfer, whatever the script (lock, prune, versions).
  const sh: Endpoint['sh'] = (script, args, input, stdout, bounds) =>
    collect('ssh', [...ssh, sshDestination(storage), '--', ['sh', '-c', script, 'sh', ...args].map(shellQuote).join(' ')], input, stdout, { silentSeconds: IO_TIMEOUT_SECONDS, maxBytes: stdout === undefined ? STORAGE_OUTPUT_MAX.memory : STORAGE_OUTPUT_MAX.file, ...bounds });
  return {
    display: storage.display,
    path: storage.path,
    rsyncRoot: rsyncTarget(storage),
    rsyncOptions: ['-e', sshCommand(storage, sshOptions, connectTimeoutSeconds, shared)],
    bulkRsyncOptions: ['-e', sshCommand(storage, [...sshOptions, '-o', 'ControlPath=none'], connectTimeoutSeconds)],
    isRemote: true,
    sh,
    async readHead(file) {
      // Kept only beside a kept connection, and for names a line can carry.
      if (!shared || file.includes('\n')) return readHeadBySh(sh, file);
      let reader = readers.get(shared.socket);
      if (!reader) {
        const opened: Reader = openReader(['ssh', ...ssh, sshDestination(storage), '--'], connectTimeoutSeconds * 1000, () => readers.get(shared.socket) === opened && readers.delete(shared.socket));
        readers.set(shared.socket, (reader = opened));
      }
      return reader.read(file).catch(async (err: unknown) => {
        if (err instanceof ReaderSilent) await closeSharedConnection(storage, shared, 'stop');
        return readHeadBySh(sh, file);
      });
    },
    close() {
      if (!shared) return Promise.resolve();
      readers.get(shared.socket)?.close();
      return closeSharedConnection(storage, shared);
    },
  };
}

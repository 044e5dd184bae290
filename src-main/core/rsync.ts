// Runs rsync with an argument array (no shell) in its own process group, so that names are never
// interpreted by a shell and cancel stops rsync *and* the ssh it started. (node-rsync runs through
// /bin/sh with incomplete escaping and its kill leaves rsync/ssh running: see README "Why not node-rsync".)
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';

export interface RsyncItem {
  /** rsync's itemize string, e.g. ">f+++++++++", "cd+++++++++", "*deleting". */
  change: string;
  name: string;
  size: number;
}

export interface RsyncProgressLine {
  bytesDone: number;
  percent: number;
  /** rsync's estimate of the time left, in seconds. */
  etaSeconds: number | null;
  filesDone: number | null;
  filesTotal: number | null;
}

export interface RsyncResult {
  /** Exit code; null when killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  filesTransferred: number;
  bytesTransferred: number;
  /** Set when rsync itself could not be started. */
  spawnError: NodeJS.ErrnoException | null;
  /** Set when the run was stopped because its rsync processes read nothing for `stallSeconds` (runRsync's option). */
  stalledSeconds?: number;
}

export interface RsyncRun {
  done: Promise<RsyncResult>;
  cancel(): void;
}

/**
 * How long an rsync run may read nothing before it is stopped: given to rsync as --timeout (which also
 * ends the storage's rsync when this laptop vanishes) and watched from outside ({@link createStallWatch}), because rsync's own cannot see a storage whose rsync hangs while sshd still
 * answers ssh's keep-alives (a dead disk, a stopped process). It is about silence, not speed: a slow
 * transfer of a big file moves data all the time, and a side busy on its files sends rsync's
 * keep-alives every half timeout (probed: a 2 GB delta transfer held with --timeout=3). 120 s is far
 * beyond a NAS's disk spin-up (~30 s) and ssh's own 45 s for a dead connection, and a person sees a
 * stuck storage named within two minutes. The one silent phase found, a checksum (-c) of whole files
 * (probed: --timeout=3 cut a 2 GB md5), gets its bytes' worth more ({@link CHECKSUM_BYTES_PER_SECOND}).
 */
export const IO_TIMEOUT_SECONDS = 120;

/** A slow disk's read rate for whole-file checksums (a USB 2 disk reads ~30 MB/s): a -c run gets its bytes' worth of time more. */
export const CHECKSUM_BYTES_PER_SECOND = 20e6;

/** How much of rsync's stderr a result keeps. */
const STDERR_MAX = 256 * 1024;

/** How often rsync's output is read when it goes to a file (see runRsync's `outputFile`). */
const POLL_MS = 100;

/** Options every run needs for parsing; callers add theirs. */
// %b (bytes sent) makes rsync print a file's line when its transfer has *finished*, not when it
// starts: the sync advances its archive only for names printed, so an interrupted file must not be.
// The name goes last, so a "|" inside it cannot shift the fields.
export const parseableOutput = ['--no-h', '--info=progress2', '--out-format=%i|%l|%b|%n'];

const progressRe = /^\s*(\d+)\s+(\d+)%\s+\S+\s+(\d+):(\d\d):(\d\d)(?:\s+\(xfr#\d+, (?:to|ir)-chk=(\d+)\/(\d+)\))?/;

/** rsync prints unprintable bytes of names as \\#ooo (octal); put the bytes back and read them as UTF-8. */
export function unescapeRsyncName(name: string): string {
  if (!name.includes('\\#')) return name;
  const parts: Buffer[] = [];
  let last = 0;
  for (const m of name.matchAll(/\\#([0-7]{3})/g)) {
    parts.push(Buffer.from(name.slice(last, m.index), 'utf8'), Buffer.from([parseInt(m[1]!, 8)]));
    last = m.index! + m[0].length;
  }
  parts.push(Buffer.from(name.slice(last), 'utf8'));
  return Buffer.concat(parts).toString('utf8');
}

/** Whether line[from, to) is one or more decimal digits. */
function digits(line: string, from: number, to: number): boolean {
  if (to <= from) return false;
  for (let i = from; i < to; i++) {
    const c = line.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/**
 * An --out-format line ("%i|%l|%b|%n"), read by hand: a sync reads one for every file it sends (a
 * regular expression per line was a tenth of a 100,000-file first sync's own processor time).
 */
function parseItem(line: string): RsyncItem | null {
  const c = line[0];
  if (c !== '<' && c !== '>' && c !== 'c' && c !== 'h' && c !== '.' && c !== '*') return null;
  const p1 = line.indexOf('|');
  if (p1 < 3 || p1 > 11) return null; // the itemize string: 3 to 11 characters
  const p2 = line.indexOf('|', p1 + 1);
  const p3 = p2 < 0 ? -1 : line.indexOf('|', p2 + 1);
  if (p3 < 0 || !digits(line, p1 + 1, p2) || !digits(line, p2 + 1, p3)) return null;
  return { change: line.slice(0, p1).trim(), name: unescapeRsyncName(line.slice(p3 + 1)), size: Number(line.slice(p1 + 1, p2)) };
}

function parseProgress(line: string): RsyncProgressLine | null {
  const p = progressRe.exec(line);
  if (!p) return null;
  const toCheck = p[6] === undefined ? null : Number(p[6]);
  const total = p[7] === undefined ? null : Number(p[7]);
  const etaSeconds = Number(p[3]) * 3600 + Number(p[4]) * 60 + Number(p[5]);
  return { bytesDone: Number(p[1]), percent: Number(p[2]), etaSeconds, filesTotal: total, filesDone: total === null || toCheck === null ? null : total - toCheck };
}

export function parseRsyncLine(line: string): { item: RsyncItem } | { progress: RsyncProgressLine } | null {
  const item = parseItem(line);
  if (item) return { item };
  const progress = parseProgress(line);
  return progress ? { progress } : null;
}

/** A progress2 line: the byte count right-aligned after spaces (an item line starts with its itemize string). */
const isProgressLine = (line: string) => line.charCodeAt(0) === 32 && line.includes('%');

export function runRsync(
  args: string[],
  on: { item?: (item: RsyncItem) => void; progress?: (p: RsyncProgressLine) => void; /** Lines that are neither (e.g. --stats). */ other?: (line: string) => void } = {},
  opts: {
    rsyncPath?: string;
    env?: NodeJS.ProcessEnv;
    /** Written to stdin (a --files-from=- list). */
    input?: Buffer;
    /**
     * rsync's output goes to this file (made anew, removed once open) and is read from it every
     * {@link POLL_MS}, not from a pipe. rsync flushes every line: through a pipe a first sync of
     * 100,000 files woke Node ~300,000 times, 3 s of its processor time taken from rsync and ssh.
     */
    outputFile?: string;
    /**
     * Stops the run (as a cancel does) when its rsync processes together read nothing for this long:
     * see {@link createStallWatch}. Absent: no watch.
     */
    stallSeconds?: number;
  } = {},
): RsyncRun {
  const outFd = opts.outputFile ? openUnlinked(opts.outputFile) : null;
  // rsync's stderr goes to a file, not a pipe: rsync hands it on to ssh, and with a shared connection
  // (ControlMaster) ssh hands it to the master, which holds it while the storage's side of the session
  // lives. A pipe then ended only when the storage's session did: never, for a storage that hangs
  // (Node's 'close' waits for every holder), and the run was let go by a timer 2 s after rsync exited.
  // A file is whole once rsync has exited: the run ends then. It is written only at its end (O_APPEND)
  // and cut back to its first STDERR_MAX bytes, the ones a result keeps, whenever it has grown past
  // them: ssh writes there whatever the storage's side says, and a broken or hostile storage that
  // says it without end would otherwise fill this disk.
  let errFd: number;
  try {
    errFd = opts.outputFile ? openUnlinked(opts.outputFile + '-stderr', fs.constants.O_APPEND) : privateScratch();
  } catch (err) {
    if (outFd !== null) fs.closeSync(outFd);
    throw err;
  }
  let child: ChildProcess;
  try {
    child = spawn(opts.rsyncPath ?? 'rsync', args, { detached: true, stdio: [opts.input ? 'pipe' : 'ignore', outFd ?? 'pipe', errFd], env: opts.env ?? process.env });
  } catch (err) {
    if (outFd !== null) fs.closeSync(outFd);
    fs.closeSync(errFd);
    throw err;
  }
  if (opts.input) {
    child.stdin!.on('error', () => {}); // rsync may exit before reading it all; its exit code says why
    child.stdin!.end(opts.input);
  }
  let stderr = '';
  let pending = '';
  let filesTransferred = 0;
  let bytesTransferred = 0;
  let spawnError: NodeJS.ErrnoException | null = null;
  let killTimer: NodeJS.Timeout | null = null;
  let stalledSeconds: number | undefined;

  const onItem = (item: RsyncItem) => {
    if ((item.change[0] === '<' || item.change[0] === '>') && item.change[1] === 'f') {
      filesTransferred++;
      bytesTransferred += item.size;
    }
    on.item?.(item);
  };
  // Items are told one by one; of the progress lines read at once only the last (the others are past).
  const onText = (text: string) => {
    // progress2 redraws with \r, names end with \n.
    const lines = (pending + text).split(/[\r\n]/);
    pending = lines.pop()!;
    let progress: string | null = null;
    for (const line of lines) {
      if (!line) continue;
      if (isProgressLine(line)) {
        progress = line;
        continue;
      }
      const item = parseItem(line);
      if (item) {
        onItem(item);
        continue;
      }
      const p = parseProgress(line);
      if (p) on.progress?.(p);
      else on.other?.(line);
    }
    const p = progress === null ? null : parseProgress(progress);
    if (p) on.progress?.(p);
    else if (progress !== null) on.other?.(progress);
  };
  const flushPending = () => {
    if (pending) onText('\n');
  };
  let poll: NodeJS.Timeout | null = null;
  let readOutput = () => {};
  if (outFd !== null) {
    const decoder = new StringDecoder('utf8');
    const buf = Buffer.allocUnsafe(1 << 16);
    let pos = 0;
    readOutput = () => {
      for (let n; (n = fs.readSync(outFd, buf, 0, buf.length, pos)) > 0; ) {
        pos += n;
        onText(decoder.write(buf.subarray(0, n)));
      }
    };
    poll = setInterval(readOutput, POLL_MS);
  } else {
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', onText);
  }
  const capStderr = setInterval(() => {
    if (fs.fstatSync(errFd).size > STDERR_MAX) fs.ftruncateSync(errFd, STDERR_MAX);
  }, POLL_MS);
  let over = false;
  const watch = opts.stallSeconds && child.pid ? createStallWatch(child.pid, opts.stallSeconds, () => {
    stalledSeconds = opts.stallSeconds;
    stop();
  }) : null;
  const ended = () => {
    if (over) return;
    over = true;
    watch?.stop();
    clearInterval(capStderr);
    if (poll) clearInterval(poll);
    poll = null;
    if (outFd !== null) {
      try {
        readOutput();
      } finally {
        fs.closeSync(outFd);
        readOutput = () => {};
      }
    }
    flushPending();
    const err = Buffer.allocUnsafe(STDERR_MAX);
    stderr = err.subarray(0, fs.readSync(errFd, err, 0, STDERR_MAX, 0)).toString('utf8');
    fs.closeSync(errFd);
  };

  const done = new Promise<RsyncResult>((resolve) => {
    child.on('error', (err) => {
      spawnError = err;
      // A spawn failure may never emit 'close'.
      if (!child.pid) {
        ended();
        resolve({ code: null, signal: null, stderr, filesTransferred, bytesTransferred, spawnError });
      }
    });
    child.on('close', (code, signal) => {
      ended();
      if (killTimer) clearTimeout(killTimer);
      resolve({ code, signal, stderr, filesTransferred, bytesTransferred, spawnError, ...(stalledSeconds ? { stalledSeconds } : {}) });
    });
  });

  const killGroup = (signal: NodeJS.Signals) => {
    try {
      if (child.pid) process.kill(-child.pid, signal);
    } catch {
      /* already gone */
    }
  };
  const stop = () => {
    killGroup('SIGTERM');
    killTimer ??= setTimeout(() => killGroup('SIGKILL'), 3000);
  };
  return { done, cancel: stop };
}

/** A file made anew at `file` and removed at once: the descriptor remains, nothing is left behind. */
function openUnlinked(file: string, flags = 0): number {
  const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_NOFOLLOW | flags, 0o600);
  fs.rmSync(file, { force: true });
  return fd;
}

/** The same in a folder of its own (0700) in the temporary folder, which anyone may write to. */
function privateScratch(): number {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-rsync-'));
  try {
    return openUnlinked(path.join(dir, 'stderr'), fs.constants.O_APPEND);
  } finally {
    fs.rmdirSync(dir);
  }
}

/**
 * Calls `stalled` once the rsync processes of the run started as `pid` (it and its descendants) have
 * together read nothing (/proc/PID/io rchar) for `seconds`. rsync's own --timeout cannot see a storage whose rsync hangs (a
 * dead disk, a stopped process) while sshd still answers: it counts its own writes as I/O, and its
 * keep-alives go on filling ssh's buffers for hours (probed: a push whose storage-side rsync was
 * SIGSTOPped never ended with --timeout=4). What a live storage does show is input: data, or the
 * keep-alives rsync sends every half --timeout when it is busy, so a run given --timeout=N is read as
 * stalled only after N seconds in which no rsync of it read a byte, from a file or from the storage.
 * ssh is left out: it reads sshd's answers to its own keep-alives, which come while the storage's
 * rsync is stuck.
 */
export function createStallWatch(pid: number, seconds: number, stalled: () => void): { stop(): void } {
  let last = -1;
  let quietSince = Date.now();
  const timer = setInterval(() => {
    const read = runReads(pid);
    if (read === null) return; // gone: the run ends by itself
    const now = Date.now();
    if (read !== last) [last, quietSince] = [read, now];
    else if (now - quietSince >= seconds * 1000) {
      clearInterval(timer);
      stalled();
    }
  }, Math.min(5000, Math.max(250, (seconds * 1000) / 8)));
  timer.unref();
  return { stop: () => clearInterval(timer) };
}

/**
 * Bytes read so far by the rsync processes of a run: the one started as `pid` and those it forked
 * (with the ssh it started), found through /proc/PID/task/TID/children. Only the run's own few
 * processes are read, not all of /proc every few seconds (nor another user's processes).
 */
function runReads(pid: number): number | null {
  let total = 0;
  let found = false;
  for (const todo = [pid]; todo.length; ) {
    const p = todo.pop()!;
    try {
      for (const task of fs.readdirSync(`/proc/${p}/task`)) {
        for (const child of fs.readFileSync(`/proc/${p}/task/${task}/children`, 'utf8').split(' ')) if (child) todo.push(Number(child));
      }
      const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
      // "pid (comm) state …": the name sits between the parentheses and may hold spaces.
      if (stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')) !== 'rsync') continue;
      const rchar = /^rchar: (\d+)$/m.exec(fs.readFileSync(`/proc/${p}/io`, 'utf8'));
      if (!rchar) continue;
      found = true;
      total += Number(rchar[1]);
    } catch {
      // exited while we looked
    }
  }
  return found ? total : null;
}

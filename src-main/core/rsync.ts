// Runs rsync with an argument array (no shell) in its own process group, so that names are never
// interpreted by a shell and cancel stops rsync *and* the ssh it started. (node-rsync runs through
// /bin/sh with incomplete escaping and its kill leaves rsync/ssh running: see README "Why not node-rsync".)
import { spawn } from 'node:child_process';

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
}

export interface RsyncRun {
  done: Promise<RsyncResult>;
  cancel(): void;
}

/** Options every run needs for parsing; callers add theirs. */
// %b (bytes sent) makes rsync print a file's line when its transfer has *finished*, not when it
// starts: the sync advances its archive only for names printed, so an interrupted file must not be.
// The name goes last, so a "|" inside it cannot shift the fields.
export const parseableOutput = ['--no-h', '--info=progress2', '--out-format=%i|%l|%b|%n'];

const progressRe = /^\s*(\d+)\s+(\d+)%\s+\S+\s+(\d+):(\d\d):(\d\d)(?:\s+\(xfr#\d+, (?:to|ir)-chk=(\d+)\/(\d+)\))?/;
const itemRe = /^([<>ch.*][^|]{2,10})\|(\d+)\|(\d+)\|(.*)$/;

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

export function parseRsyncLine(line: string): { item: RsyncItem } | { progress: RsyncProgressLine } | null {
  const item = itemRe.exec(line);
  if (item) return { item: { change: item[1]!.trim(), name: unescapeRsyncName(item[4]!), size: Number(item[2]) } };
  const p = progressRe.exec(line);
  if (p) {
    const toCheck = p[6] === undefined ? null : Number(p[6]);
    const total = p[7] === undefined ? null : Number(p[7]);
    const etaSeconds = Number(p[3]) * 3600 + Number(p[4]) * 60 + Number(p[5]);
    return { progress: { bytesDone: Number(p[1]), percent: Number(p[2]), etaSeconds, filesTotal: total, filesDone: total === null || toCheck === null ? null : total - toCheck } };
  }
  return null;
}

export function runRsync(
  args: string[],
  on: { item?: (item: RsyncItem) => void; progress?: (p: RsyncProgressLine) => void; /** Lines that are neither (e.g. --stats). */ other?: (line: string) => void } = {},
  opts: { rsyncPath?: string; env?: NodeJS.ProcessEnv; /** Written to stdin (a --files-from=- list). */ input?: Buffer } = {},
): RsyncRun {
  const child = spawn(opts.rsyncPath ?? 'rsync', args, { detached: true, stdio: [opts.input ? 'pipe' : 'ignore', 'pipe', 'pipe'], env: opts.env ?? process.env });
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

  const onLine = (line: string) => {
    const parsed = parseRsyncLine(line);
    if (!parsed) return void on.other?.(line);
    if ('item' in parsed) {
      if (/^[<>]f/.test(parsed.item.change)) {
        filesTransferred++;
        bytesTransferred += parsed.item.size;
      }
      on.item?.(parsed.item);
    } else on.progress?.(parsed.progress);
  };
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    // progress2 redraws with \r, names end with \n.
    const parts = (pending + chunk).split(/[\r\n]/);
    pending = parts.pop()!;
    parts.forEach(onLine);
  });
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    if (stderr.length < 256 * 1024) stderr += chunk;
  });

  const done = new Promise<RsyncResult>((resolve) => {
    child.on('error', (err) => {
      spawnError = err;
      // A spawn failure may never emit 'close'.
      if (!child.pid) resolve({ code: null, signal: null, stderr, filesTransferred, bytesTransferred, spawnError });
    });
    child.on('close', (code, signal) => {
      if (pending) onLine(pending);
      if (killTimer) clearTimeout(killTimer);
      resolve({ code, signal, stderr, filesTransferred, bytesTransferred, spawnError });
    });
  });

  const killGroup = (signal: NodeJS.Signals) => {
    try {
      if (child.pid) process.kill(-child.pid, signal);
    } catch {
      /* already gone */
    }
  };
  return {
    done,
    cancel() {
      killGroup('SIGTERM');
      killTimer ??= setTimeout(() => killGroup('SIGKILL'), 3000);
    },
  };
}

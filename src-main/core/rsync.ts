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
export const parseableOutput = ['--no-h', '--info=progress2', '--out-format=%i|%n|%l'];

const progressRe = /^\s*(\d+)\s+(\d+)%\s+\S+\s+\S+(?:\s+\(xfr#\d+, (?:to|ir)-chk=(\d+)\/(\d+)\))?/;
const itemRe = /^([<>ch.*][^|]{2,10})\|(.*)\|(\d+)$/;

export function parseRsyncLine(line: string): { item: RsyncItem } | { progress: RsyncProgressLine } | null {
  const item = itemRe.exec(line);
  if (item) return { item: { change: item[1]!.trim(), name: item[2]!, size: Number(item[3]) } };
  const p = progressRe.exec(line);
  if (p) {
    const toCheck = p[3] === undefined ? null : Number(p[3]);
    const total = p[4] === undefined ? null : Number(p[4]);
    return { progress: { bytesDone: Number(p[1]), percent: Number(p[2]), filesTotal: total, filesDone: total === null || toCheck === null ? null : total - toCheck } };
  }
  return null;
}

export function runRsync(
  args: string[],
  on: { item?: (item: RsyncItem) => void; progress?: (p: RsyncProgressLine) => void; /** Lines that are neither (e.g. --stats). */ other?: (line: string) => void } = {},
  opts: { rsyncPath?: string; env?: NodeJS.ProcessEnv } = {},
): RsyncRun {
  const child = spawn(opts.rsyncPath ?? 'rsync', args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env });
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
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    // progress2 redraws with \r, names end with \n.
    const parts = (pending + chunk).split(/[\r\n]/);
    pending = parts.pop()!;
    parts.forEach(onLine);
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
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

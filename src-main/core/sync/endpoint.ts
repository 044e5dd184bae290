// The two ends of a sync, behind one shape: a folder on this machine or a folder over ssh. Both run
// the same POSIX sh scripts (listing, pruning versions) and give rsync its root and transport options.
import { spawn } from 'node:child_process';
import type { Storage } from '../storage-url';
import { closeSharedConnection, rsyncTarget, sharedConnection, shellQuote, sshArgs, sshCommand, sshDestination } from '../storage-url';

export interface ShellResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

export interface Endpoint {
  display: string;
  /** The folder itself (path on its machine). */
  path: string;
  /** rsync's spelling of the folder, with a trailing slash. */
  rsyncRoot: string;
  /** Options rsync needs to reach it (-e ssh …). */
  rsyncOptions: string[];
  isRemote: boolean;
  /**
   * Runs a POSIX sh script there with positional arguments (never interpolated into the script).
   * `stdout`: a file descriptor that receives the output instead of memory (a listing of 1M entries);
   * `input` likewise a descriptor to read from.
   */
  sh(script: string, args: string[], input?: Buffer | number, stdout?: number): Promise<ShellResult>;
  /** Ends the connection kept open for the next use (ssh's shared connection), if there is one. */
  close(): Promise<void>;
}

function collect(cmd: string, args: string[], input?: Buffer | number, stdout?: number): Promise<ShellResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: [typeof input === 'number' ? input : input ? 'pipe' : 'ignore', stdout ?? 'pipe', 'pipe'] });
    if (input && typeof input !== 'number') {
      child.stdin!.on('error', () => {}); // the script may exit before reading it all; its exit code says why
      child.stdin!.end(input);
    }
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout?.on('data', (c: Buffer) => out.push(c));
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', (err) => resolve({ code: null, stdout: Buffer.alloc(0), stderr: String(err) }));
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr }));
  });
}

export function localEndpoint(dir: string, display = dir): Endpoint {
  return {
    display,
    path: dir,
    rsyncRoot: dir.endsWith('/') ? dir : dir + '/',
    rsyncOptions: [],
    isRemote: false,
    sh: (script, args, input, stdout) => collect('sh', ['-c', script, 'sh', ...args], input, stdout),
    close: () => Promise.resolve(),
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
  return {
    display: storage.display,
    path: storage.path,
    rsyncRoot: rsyncTarget(storage),
    rsyncOptions: ['-e', sshCommand(storage, sshOptions, connectTimeoutSeconds, shared)],
    isRemote: true,
    // ssh joins its arguments into one command line for the remote shell: quote each one.
    sh: (script, args, input, stdout) => collect('ssh', [...ssh, sshDestination(storage), '--', ['sh', '-c', script, 'sh', ...args].map(shellQuote).join(' ')], input, stdout),
    close: () => (shared ? closeSharedConnection(storage, shared) : Promise.resolve()),
  };
}

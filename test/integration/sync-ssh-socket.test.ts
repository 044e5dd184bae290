// The shared ssh connection against another local user, for real: `tabula sync` leaves its ssh master
// running (ControlPersist) with a control socket, and anyone who can connect to that socket runs
// commands on the storage as this user without a key. The attacker is `daemon` (through setpriv); the
// storage is a real sshd on 127.0.0.1; a world-writable sticky folder stands in for /tmp (TMPDIR).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { resolvePaths } from '../../src-main/core/paths';
import { parseStorageUrl, sharedConnection } from '../../src-main/core/storage-url';
import type { AgentSandbox } from '../fixtures/headless-agent';
import type { SshServer } from '../fixtures/sshd';
import { useSandboxOverSsh } from '../fixtures/world-over-ssh';

const ATTACKER = ['--reuid=daemon', '--regid=daemon', '--clear-groups'];
const over = useSandboxOverSsh();
const remote = over.remote;
let sshd: SshServer;
let sb: AgentSandbox;
let shared: string;

beforeEach(() => {
  [sb, sshd] = [over.sb(), over.sshd()];
  shared = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-sharedtmp-'));
  fs.chmodSync(shared, 0o1777);
  sb.env.TMPDIR = shared;
});
afterEach(async () => {
  // The masters `tabula sync` left running (ControlPersist) end with their sockets' folders.
  for (const s of [socketIn(resolvePaths(sb.env).runtimeDir), path.join(shared, `tabula-${process.getuid!()}`, path.basename(socketIn('/r')))]) spawnSync('ssh', ['-o', `ControlPath=${s}`, '-O', 'exit', 'x']);
  fs.rmSync(shared, { recursive: true, force: true });
});

const socketIn = (dir: string) => sharedConnection(parseStorageUrl(sshd.url(remote())), dir, 0)!.socket;
const master = (socket: string, as: string[] = []) => spawnSync(as.length ? 'setpriv' : 'ssh', [...(as.length ? [...as, 'ssh'] : []), '-o', `ControlPath=${socket}`, '-O', 'check', 'x'], { encoding: 'utf8' }).status === 0;

describe("the shared ssh connection's control socket", () => {
  it('another local user can neither check nor use it to run a command on the storage', { timeout: 60_000 }, async () => {
    expect((await sb.cli(['sync'])).code).toBe(0);
    const socket = socketIn(resolvePaths(sb.env).runtimeDir);
    expect(master(socket)).toBe(true); // it outlives the run, for the next one
    const marker = path.join(sb.dir, 'pwned');
    fs.chmodSync(sb.dir, 0o755); // the attacker may walk to the folder; only its 0700 guards the socket
    expect(master(socket, ATTACKER)).toBe(false);
    const hijack = spawnSync('setpriv', [...ATTACKER, 'ssh', '-o', `ControlPath=${socket}`, '-o', 'ControlMaster=no', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-p', String(sshd.port), `${sshd.user}@127.0.0.1`, `touch ${marker}`], { encoding: 'utf8', timeout: 20_000 });
    expect(hijack.status).not.toBe(0);
    expect(hijack.stderr).toMatch(/control socket connect\(.*\): Permission denied/i);
    expect(fs.existsSync(marker)).toBe(false);
  });

  it("is never put in a folder another user made first at the fallback path (runtime folder too long for a socket): the sync runs without it", { timeout: 60_000 }, async () => {
    // 150 characters: a socket there would pass the 108-byte limit, so the fallback in TMPDIR is tried.
    const runtime = path.join(sb.dir, 'r'.repeat(150 - sb.dir.length - 1));
    fs.mkdirSync(runtime, { mode: 0o700 });
    sb.env.XDG_RUNTIME_DIR = runtime;
    const planted = path.join(shared, `tabula-${process.getuid!()}`);
    for (const plant of ['folder', 'link'] as const) {
      fs.rmSync(planted, { recursive: true, force: true });
      const theirs = path.join(shared, 'theirs');
      fs.rmSync(theirs, { recursive: true, force: true });
      expect(spawnSync('setpriv', [...ATTACKER, 'sh', '-c', `mkdir -m 777 "$1" && ${plant === 'link' ? 'ln -s "$1" "$2"' : 'mkdir -m 777 "$2"'}`, 'sh', theirs, planted]).status).toBe(0);
      fs.writeFileSync(path.join(sb.home, 'Documents/notes.txt'), `written with a ${plant} planted`);
      const r = await sb.cli(['sync']);
      expect(r.code, r.stderr).toBe(0);
      expect(fs.readFileSync(path.join(remote(), 'Documents/notes.txt'), 'utf8')).toBe(`written with a ${plant} planted`);
      // Nothing of ours in the attacker's folder: no socket to connect to, no master to reuse.
      expect(fs.readdirSync(plant === 'link' ? theirs : planted)).toEqual([]);
    }
  });
});

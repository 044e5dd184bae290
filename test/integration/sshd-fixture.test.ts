import { describe, it, expect } from 'vitest';
import { execFile, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startSshServer, type SshServer } from '../fixtures/sshd';

interface Result { code: number; stdout: string; stderr: string }

function exec(cmd: string, args: string[]): Promise<Result> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 15_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const ssh = (s: SshServer, command: string) =>
  exec('ssh', [...s.sshOptions, '-p', String(s.port), `${s.user}@${s.host}`, command]);

describe('sshd fixture', () => {
  it('runs commands over ssh, survives stop/start, and cleans up on dispose', async () => {
    const server = await startSshServer();
    const tempDir = path.dirname(server.identityFile);
    try {
      expect(await ssh(server, 'echo ok')).toMatchObject({ code: 0, stdout: 'ok\n' });
      expect(server.url('/srv/home/')).toBe(`ssh://${server.user}@127.0.0.1:${server.port}/srv/home/`);

      await server.stop();
      const down = await ssh(server, 'echo ok');
      expect(down.code).toBe(255);
      expect(down.stderr).toMatch(/Connection refused/);

      await server.start();
      expect(await ssh(server, 'echo ok')).toMatchObject({ code: 0, stdout: 'ok\n' });
    } finally {
      await server.dispose();
    }
    expect(existsSync(tempDir)).toBe(false);
  }, 30_000);

  it("gives every session its own empty HOME, so no rc file of the test account's real home runs", async () => {
    const server = await startSshServer();
    try {
      // Root's ~/.bashrc here runs pyenv; a lock it left once made every ssh wait 2 s.
      const r = await ssh(server, 'printf "%s\\n" "$HOME"; ls -A "$HOME" | wc -l');
      expect(r).toMatchObject({ code: 0, stderr: '' });
      const [home, entries] = r.stdout.trim().split('\n');
      expect(home).not.toBe(os.homedir());
      expect(path.dirname(home!)).toBe(path.dirname(server.identityFile));
      expect(entries).toBe('0');
    } finally {
      await server.dispose();
    }
  }, 30_000);

  it('carries rsync', async () => {
    const server = await startSshServer();
    const local = await mkdtemp(path.join(os.tmpdir(), 'tabula-rsync-'));
    try {
      await writeFile(path.join(local, 'a.txt'), 'hello');
      const shell = ['ssh', ...server.sshOptions, '-p', String(server.port)].join(' ');
      const res = await exec('rsync', ['-a', '-e', shell, `${local}/a.txt`, `${server.user}@${server.host}:${local}/b.txt`]);
      expect(res).toMatchObject({ code: 0, stderr: '' });
      expect(await readFile(path.join(local, 'b.txt'), 'utf8')).toBe('hello');
    } finally {
      await server.dispose();
      await rm(local, { recursive: true, force: true });
    }
  }, 30_000);

  it('an sshd that cannot start says why in its own last words, without holding all it printed before', async () => {
    // sshd warns once per deprecated line (~1 MB here), then stops at the option it does not know.
    const extraConfig = [...Array<string>(20_000).fill('UsePrivilegeSeparation yes'), 'NoSuchOption yes'];
    const err = await startSshServer({ extraConfig }).then(
      async (server) => {
        await server.dispose();
        return new Error('sshd started');
      },
      (e: unknown) => e as Error,
    );
    expect(err.message).toMatch(/^sshd exited \(255\) before listening on port \d+:\n/);
    // What it said last, from a line's start (sshd ends its lines with \r\n).
    expect(err.message).toMatch(/:\n…\n\/\S+ line \d+: Deprecated option UsePrivilegeSeparation\r\n/);
    expect(err.message).toMatch(/Bad configuration option: NoSuchOption\r\n[^\n]* terminating, 1 bad configuration options\r\n$/);
    expect(err.message.length).toBeLessThan(10_000);
  }, 30_000);

  it('leaves no process of a session behind: one the storage stopped, one that went to the background ignoring TERM', async () => {
    const server = await startSshServer();
    const tag = `tabula-leftover-${crypto.randomBytes(4).toString('hex')}`;
    const pgrep = (...args: string[]) => spawnSync('pgrep', args, { encoding: 'utf8' }).stdout.trim();
    try {
      // A hostile storage's command that stops itself, and the client that gives up on it.
      const client = execFile('ssh', [...server.sshOptions, '-p', String(server.port), `${server.user}@${server.host}`, `sh -c ': ${tag}-stopped; kill -STOP $$'`]);
      // A session that leaves a writer behind, ignoring TERM and HUP, out of sshd's process tree.
      const background = await ssh(server, `setsid sh -c 'trap "" TERM HUP; while :; do echo ${tag}-writer >&2; sleep 0.2; done' </dev/null >/dev/null 2>&1 & echo started`);
      expect(background).toMatchObject({ code: 0, stdout: 'started\n' });
      for (const deadline = Date.now() + 10_000; !pgrep('-r', 'T', '-f', `${tag}-stopped`) && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 100));
      expect(pgrep('-r', 'T', '-f', `${tag}-stopped`)).not.toBe('');
      expect(pgrep('-f', `${tag}-writer`)).not.toBe('');
      client.kill('SIGKILL');
      await new Promise((r) => client.once('exit', r));
    } finally {
      await server.dispose();
    }
    expect(pgrep('-a', '-f', tag)).toBe('');
  }, 30_000);
});

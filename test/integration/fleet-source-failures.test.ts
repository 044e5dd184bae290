// A fleet server over ssh that cannot be fetched from for another reason than a stall (that one:
// rsync-hung-server.test.ts): the person reads which server failed and why, in the fleet server's
// words, not the storage's (a backup's wording, which sent them to look at their storage).
// Real rsync and ssh against a real sshd on 127.0.0.1.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TabulaError } from '../../src-main/common/errors';
import { fetchFleetFile } from '../../src-main/core/fleet-source';
import { freePort } from '../fixtures/free-port';
import { startSshServer, type SshServer } from '../fixtures/sshd';

let sshd: SshServer;
let dir: string;
beforeAll(async () => {
  sshd = await startSshServer();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-fleet-fail-'));
  fs.writeFileSync(path.join(dir, 'policy.json'), '{}');
});
afterAll(async () => {
  await sshd.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

const failureOf = (p: Promise<unknown>) =>
  p.then(
    () => new Error('the fetch succeeded'),
    (e: unknown) => e,
  );

it('a fleet server that refuses this computer’s key is named as the fleet server, with the reason', async () => {
  const stranger = path.join(dir, 'stranger_ed25519');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', stranger]);
  const sshOptions = sshd.sshOptions.map((o) => (o === sshd.identityFile ? stranger : o));
  const url = sshd.url(dir);
  const err = await failureOf(fetchFleetFile({ url, sshOptions, connectTimeoutSeconds: 5 }, 'policy.json'));
  expect(err).toBeInstanceOf(TabulaError);
  expect((err as TabulaError).code).toBe('image-unreachable');
  expect((err as TabulaError).message).toBe(`The fleet server ${url} refused this computer's login (the key was not accepted).`);
  // The same server with the key it knows: the file arrives.
  expect(String(await fetchFleetFile({ url, sshOptions: sshd.sshOptions, connectTimeoutSeconds: 5 }, 'policy.json'))).toBe('{}');
});

it('a fleet server nobody answers for is named as the fleet server, with the reason, and a retry may help', async () => {
  const url = `ssh://${sshd.user}@127.0.0.1:${await freePort()}${dir}`;
  const err = await failureOf(fetchFleetFile({ url, sshOptions: sshd.sshOptions, connectTimeoutSeconds: 5 }, 'policy.json'));
  expect(err).toBeInstanceOf(TabulaError);
  expect((err as TabulaError).message).toBe(`The fleet server ${url} could not be reached (connection refused).`);
  expect((err as TabulaError).retryable).toBe(true);
});

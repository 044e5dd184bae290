// The remote reimage's gate in tabula-helper (run as root, as pkexec runs it, on a sandbox root):
// polkit lets anyone ask for `reimage-signed` (assets/polkit), so the helper must refuse every
// command that is not signed by a command key of the root-owned image config, for this machine,
// unexpired, a reimage, and never run before — and refuse it before touching anything.
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { acceptSignedReimage, signedNoncesFile } from '../../src-main/core/image/helper-verbs';
import { generateKeyPair, sign } from '../../src-main/core/signing';
import { repoRoot } from '../fixtures/headless-agent';

const machineId = 'c'.repeat(32);
const me = { machineId, primaryMac: '52:54:00:12:34:56' };
let root: string;
const commandKey = generateKeyPair();
const imageKey = generateKeyPair();

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-signed-reimage-'));
  const cfg = path.join(root, 'usr/share/defaults/tabula/config.json');
  fs.mkdirSync(path.dirname(cfg), { recursive: true });
  fs.writeFileSync(cfg, JSON.stringify({ fleet: { trustedKeys: [imageKey.publicKey], commandKeys: [commandKey.publicKey] } }));
  fs.mkdirSync(path.join(root, 'etc'));
  fs.writeFileSync(path.join(root, 'etc/machine-id'), `${machineId}\n`);
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

function command(over: Record<string, unknown> = {}, key = commandKey.privateKeyPem) {
  const now = Date.now();
  const body = JSON.stringify({ format: 'tabula-command-1', machineId, verb: 'reimage', nonce: crypto.randomBytes(16).toString('hex'), issuedAt: new Date(now - 1000).toISOString(), expiresAt: new Date(now + 3600_000).toISOString(), ...over });
  return { command: Buffer.from(body).toString('base64'), signature: sign(body, key) };
}
const refusal = (signed: ReturnType<typeof command> | undefined) => {
  try {
    acceptSignedReimage(root, signed, me);
    return null;
  } catch (err) {
    return (err as Error).message;
  }
};

it('accepts a signed reimage for this machine once, and records it where a reimage does not reset it', () => {
  const c = command();
  expect(refusal(c)).toBeNull();
  expect(signedNoncesFile(root)).toBe(path.join(root, 'var/lib/tabula/signed-commands.json'));
  expect(fs.statSync(signedNoncesFile(root)).mode & 0o777).toBe(0o600);
  expect(refusal(c)).toMatch(/^Replay: this reimage/);
});

it('refuses what the fleet did not sign for this machine, before anything is recorded', () => {
  expect(refusal(undefined)).toMatch(/needs the signed fleet command/);
  expect(refusal(command({}, imageKey.privateKeyPem))).toMatch(/not signed by a fleet key this machine trusts for fleet commands/);
  expect(refusal(command({ machineId: 'd'.repeat(32) }))).toMatch(/for another machine/);
  expect(refusal(command({ mac: '52:54:00:00:00:01' }))).toMatch(/names MAC 52:54:00:00:00:01/);
  expect(refusal(command({ expiresAt: new Date(Date.now() - 1000).toISOString() }))).toMatch(/expired/);
  expect(refusal(command({ verb: 'pull' }))).toMatch(/"pull", not a reimage/);
  const tampered = command();
  const body = JSON.parse(Buffer.from(tampered.command, 'base64').toString('utf8'));
  tampered.command = Buffer.from(JSON.stringify({ ...body, overrideUnsynced: true })).toString('base64');
  expect(refusal(tampered)).toMatch(/not signed by a fleet key/);
  expect(fs.existsSync(signedNoncesFile(root))).toBe(false);
});

it('the helper process refuses a bad command on stdin with a clear error and changes nothing', () => {
  const run = (input: string) => spawnSync(process.execPath, [path.join(repoRoot, 'build/main/helper.js'), 'reimage-signed'], { encoding: 'utf8', input, env: { ...process.env, TABULA_ROOT: root } });
  const other = run(JSON.stringify(command({ machineId: 'd'.repeat(32) })));
  expect(other.status).toBe(1);
  expect(JSON.parse(other.stdout.trim()).error).toMatchObject({ code: 'command-rejected', message: 'The fleet command is for another machine: rejected.' });
  const junk = run('not json');
  expect(JSON.parse(junk.stdout.trim()).error.message).toMatch(/expects \{"command","signature"\} as JSON/);
  expect(run('x'.repeat(300 * 1024)).status).toBe(1);
  expect(fs.readdirSync(root).sort()).toEqual(['etc', 'usr']);
});

// Fleet commands under attack, against a real headless agent polling a real fleet folder:
// - keys by role: a leaked image-signing key signs a reimage; the agent refuses it (and a command
//   key cannot sign the policy that picks the image);
// - a command that says it is valid for a year is refused once it is more than 30 days old;
// - the record of handled nonces is damaged after a command ran: the agent refuses every command
//   instead of falling back to an older copy without that nonce and running it again.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { publishRsyncTree, writeSigned } from '../../src-main/fleet-publish';
import { generateKeyPair, type KeyPair } from '../../src-main/core/signing';
import { createRsyncTreeBackend } from '../../src-main/core/image/rsync-tree';
import { runFleet } from '../../src-main/fleet';
import { createSandbox, startHeadlessAgent, type AgentSandbox } from '../fixtures/headless-agent';
import { createImageFleet, fakeBootloaderBoot, testMachineId, writeMachineId, writeSystemConfig, type ImageFleet } from '../fixtures/image-fleet';

let sb: AgentSandbox;
let fleet: ImageFleet;
let root: string;
let commandKey: KeyPair;
const imageKeyFile = () => path.join(fleet.dir, 'image.key');
const commandKeyFile = () => path.join(fleet.dir, 'command.key');
const noncesFile = () => path.join(sb.dir, 'state/tabula/fleet-nonces.json');
const resetMarker = () => path.join(root, 'var/lib/tabula/reset-on-boot');

beforeEach(async () => {
  sb = createSandbox();
  root = sb.env.TABULA_ROOT!;
  fleet = createImageFleet({ root });
  commandKey = generateKeyPair();
  fs.writeFileSync(imageKeyFile(), fleet.key.privateKeyPem);
  fs.writeFileSync(commandKeyFile(), commandKey.privateKeyPem);
  fs.mkdirSync(path.join(sb.dir, 'nas'));
  sb.writeUserConfig({ storage: { url: path.join(sb.dir, 'nas') } });
  writeMachineId(root);
  writeSystemConfig(root, {
    image: { backend: 'rsync-tree', url: fleet.serverDir, channel: 'stable', autoPull: false },
    fleet: { url: fleet.serverDir, trustedKeys: [fleet.key.publicKey], commandKeys: [commandKey.publicKey], reimageCountdownSeconds: 0 },
  });
  publishRsyncTree({ treeDir: fleet.makeTree('v1', '1.0', 10), outDir: fleet.serverDir, version: '1.0', channel: 'stable', privateKeyPem: fleet.key.privateKeyPem });
  const b = createRsyncTreeBackend({ root, source: { url: fleet.serverDir, sshOptions: [], connectTimeoutSeconds: 5 }, channel: 'stable', trustedKeys: [fleet.key.publicKey] });
  await b.stage();
  b.close();
  fakeBootloaderBoot(root);
});
afterEach(async () => {
  await sb.dispose();
  fleet.dispose();
});

const poll = async () => JSON.parse((await sb.cli(['fleet', 'poll', '--json'])).stdout) as { outcome: string; message: string; verb: string } | null;
const command = (verb: string, keyFile: string, extra: string[] = []) => runFleet(['command', verb, '--machine', testMachineId, '--expires', '1h', '--key', keyFile, '--out', fleet.serverDir, ...extra]);

describe('keys by role', () => {
  it('a reimage signed with the image key is refused; the same order from the command key is taken', async () => {
    await startHeadlessAgent(sb);
    // The home is backed up, so nothing but the key stands between this command and a reset.
    expect((await sb.cli(['backup', 'now'])).code).toBe(0);
    command('reimage', imageKeyFile());
    const refused = await poll();
    expect(refused?.outcome).toBe('rejected');
    expect(refused?.message).toMatch(/not signed by a fleet key this machine trusts for fleet commands/);
    expect(fs.existsSync(resetMarker())).toBe(false);

    command('diagnostics', commandKeyFile());
    expect((await poll())?.outcome).toBe('done');
  });

  it('a policy signed with the command key is ignored, with the reason shown', async () => {
    const policy = path.join(fleet.dir, 'policy.json');
    fs.writeFileSync(policy, JSON.stringify({ format: 'tabula-policy-1', channel: 'beta' }));
    runFleet(['sign-policy', '--policy', policy, '--key', commandKeyFile(), '--out', fleet.serverDir]);
    await startHeadlessAgent(sb);
    const s = JSON.parse((await sb.cli(['image', 'check', '--json'])).stdout);
    expect(s.policyProblem).toMatch(/fleet policy is not signed by a fleet key this machine trusts for images/);
    expect(s.channel).toBe('stable');
  });
});

describe('command lifetime', () => {
  it('a command issued 31 days ago is refused even though it says it is valid for a year', async () => {
    await startHeadlessAgent(sb);
    expect((await sb.cli(['backup', 'now'])).code).toBe(0);
    const day = 86_400_000;
    const cmd = { format: 'tabula-command-1', machineId: testMachineId, verb: 'reimage', nonce: 'a'.repeat(32), issuedAt: new Date(Date.now() - 31 * day).toISOString(), expiresAt: new Date(Date.now() + 365 * day).toISOString() };
    writeSigned(path.join(fleet.serverDir, 'commands', `${testMachineId}.json`), JSON.stringify(cmd), commandKey.privateKeyPem);
    const r = await poll();
    expect(r?.outcome).toBe('rejected');
    expect(r?.message).toMatch(/more than 30 days ago: rejected/);
    expect(fs.existsSync(resetMarker())).toBe(false);
  });
});

describe('the record of handled commands', () => {
  it('once damaged, every command is refused: the last one does not run again', async () => {
    await startHeadlessAgent(sb);
    command('diagnostics', commandKeyFile());
    expect((await poll())?.outcome).toBe('done');
    command('diagnostics', commandKeyFile());
    const second = fs.readFileSync(path.join(fleet.serverDir, 'commands', `${testMachineId}.json`));
    const secondSig = fs.readFileSync(path.join(fleet.serverDir, 'commands', `${testMachineId}.json.sig`));
    expect((await poll())?.outcome).toBe('done');
    const handled = (await sb.cli(['fleet', 'poll', '--json'])).stdout;
    expect(JSON.parse(handled).message).toMatch(/^Replay: /);

    // A crash, a full disk or a hostile edit leaves the record unreadable.
    fs.writeFileSync(noncesFile(), '{"truncated');
    // The server serves the second command again.
    fs.writeFileSync(path.join(fleet.serverDir, 'commands', `${testMachineId}.json`), second);
    fs.writeFileSync(path.join(fleet.serverDir, 'commands', `${testMachineId}.json.sig`), secondSig);
    const r = await poll();
    expect(r?.outcome).toBe('rejected');
    expect(r?.message).toMatch(/record of fleet commands already run .* is not valid JSON.*every fleet command is refused/);
    // And a fresh, valid command is refused too while the record is damaged.
    command('diagnostics', commandKeyFile());
    expect((await poll())?.message).toMatch(/every fleet command is refused/);
  });
});

// The image feature as people and scripts meet it: a real headless agent, the `tabula image …` CLI,
// the real tabula-helper process (run directly as root, as pkexec would run it), rsync-tree over real
// rsync, signed fleet commands and the reimage guard.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { publishRsyncTree } from '../../src-main/fleet-publish';
import { generateKeyPair } from '../../src-main/core/signing';
import { readSymlink } from '../../src-main/core/image/deployments-dir';
import { createRsyncTreeBackend } from '../../src-main/core/image/rsync-tree';
import { runFleet } from '../../src-main/fleet';
import { createImageFleet, fakeBootloaderBoot, testMachineId, writeMachineId, writeSystemConfig, type ImageFleet } from '../fixtures/image-fleet';
import { createSandbox, repoRoot, startHeadlessAgent, type AgentSandbox, type RunningAgent } from '../fixtures/headless-agent';

let sb: AgentSandbox;
let fleet: ImageFleet;
let root: string;
const keyFile = () => path.join(fleet.dir, 'fleet.key');

beforeEach(async () => {
  sb = createSandbox();
  root = sb.env.TABULA_ROOT!;
  fleet = createImageFleet({ root });
  fs.writeFileSync(keyFile(), fleet.key.privateKeyPem);
  fs.mkdirSync(path.join(sb.dir, 'nas'));
  sb.writeUserConfig({ storage: { url: path.join(sb.dir, 'nas') } });
  writeMachineId(root);
  writeSystemConfig(root, {
    image: { backend: 'rsync-tree', url: fleet.serverDir, channel: 'stable', autoPull: false },
    fleet: { url: fleet.serverDir, trustedKeys: [fleet.key.publicKey], commandKeys: [fleet.key.publicKey], reimageCountdownSeconds: 1 },
  });
  // The machine runs v1 (installed and booted before the agent starts).
  publishRsyncTree({ treeDir: fleet.makeTree('v1', '1.0', 30), outDir: fleet.serverDir, version: '1.0', channel: 'stable', privateKeyPem: fleet.key.privateKeyPem });
  await createRsyncTreeBackend({ root, source: { url: fleet.serverDir, sshOptions: [], connectTimeoutSeconds: 5 }, channel: 'stable', trustedKeys: [fleet.key.publicKey] }).stage();
  fakeBootloaderBoot(root);
});
afterEach(async () => {
  await sb.dispose();
  fleet.dispose();
});

const publishV2 = () => {
  const t = fleet.makeTree('v2', '2.0', 30);
  fs.writeFileSync(path.join(t, 'usr/share/data/d0/f0.bin'), 'new in 2.0\n');
  publishRsyncTree({ treeDir: t, outDir: fleet.serverDir, version: '2.0', channel: 'stable', privateKeyPem: fleet.key.privateKeyPem });
};
const json = async (args: string[]) => {
  const r = await sb.cli([...args, '--json']);
  return { ...r, value: r.stdout.trim() ? JSON.parse(r.stdout) : null };
};
const call = async (agent: RunningAgent, method: string, body: object = {}) => {
  const res = await fetch(`${agent.url}/api/call/${method}`, { method: 'POST', body: JSON.stringify(body), headers: { authorization: `Bearer ${agent.token}` } });
  return res.json();
};

describe('tabula image (CLI against the headless agent)', () => {
  it('status → check → pull → "restart to update" → rollback', async () => {
    await startHeadlessAgent(sb);
    // Right after start the agent is still reading the deployments through the helper, and says so.
    let s = (await json(['image', 'status'])).value;
    if (!s.booted) expect(s).toMatchObject({ state: 'checking', reason: 'Reading the installed image versions…' });
    await expect.poll(async () => (s = (await json(['image', 'status'])).value).booted?.version, { timeout: 20_000 }).toBe('1.0');
    expect(s.staged).toBeNull();
    expect(s.channel).toBe('stable');
    expect(s.nextCheckAt).not.toBeNull();
    expect(s.state).toBe('idle');
    expect(s.reason).toMatch(/version 1\.0/);

    publishV2();
    s = (await json(['image', 'check'])).value;
    expect(s.available.version).toBe('2.0');
    expect(s.reason).toBe('Version 2.0 is available (running 1.0).');
    expect(s.lastCheckAt).not.toBeNull();

    const pulled = await json(['image', 'pull']);
    expect(pulled.code).toBe(0);
    expect(pulled.value.state).toBe('staged');
    expect(pulled.value.reason).toBe('Version 2.0 is ready: restart to update.');
    expect(pulled.value.restartRequired).toBe(true);
    expect(pulled.value.staged.version).toBe('2.0');
    expect(pulled.value.lastPullBytes).toBeGreaterThan(0);
    expect(readSymlink(path.join(root, 'var/lib/tabula/next'))).toBe('deployments/2.0');

    const human = await sb.cli(['image', 'status']);
    expect(human.stdout).toContain('staged:    2.0');
    expect(human.stdout).toContain('restart to update');

    const back = (await json(['image', 'rollback'])).value;
    expect(back.staged).toBeNull();
    expect(back.restartRequired).toBe(false);
    expect(readSymlink(path.join(root, 'var/lib/tabula/next'))).toBe('deployments/1.0');
  });

  it('a tampered image fails with the reason shown and the running version kept', async () => {
    await startHeadlessAgent(sb);
    publishV2();
    fs.writeFileSync(path.join(fleet.serverDir, 'images/2.0/tree/usr/share/data/d0/f0.bin'), 'bad in 2.0\n');
    const r = await json(['image', 'pull']);
    expect(r.code).toBe(1);
    expect(r.value.state).toBe('failed');
    expect(r.value.reason).toMatch(/does not match its signed manifest/);
    expect(r.value.lastError.details).toContain('usr/share/data/d0/f0.bin: content does not match its checksum');
    expect(r.value.staged).toBeNull();
    // The helper's check held: the agent records it (the helper exits non-zero with that result).
    expect(r.value.available.version).toBe('2.0');
    expect(r.value.lastCheckAt).not.toBeNull();
    expect(readSymlink(path.join(root, 'var/lib/tabula/next'))).toBe('deployments/1.0');
  });

  it('an unreachable server shows as offline with a reason', async () => {
    writeSystemConfig(root, { image: { backend: 'rsync-tree', url: path.join(sb.dir, 'unmounted'), autoPull: false }, fleet: { trustedKeys: [fleet.key.publicKey] } });
    await startHeadlessAgent(sb);
    const r = await json(['image', 'check']);
    expect(r.code).toBe(1);
    expect(r.value.state).toBe('offline');
    expect(r.value.reason).toMatch(/could not be reached/);
  });
});

describe('signed fleet policy', () => {
  it("follows the policy's channel for the machine's class, and ignores a policy that does not verify", async () => {
    writeSystemConfig(root, {
      image: { backend: 'rsync-tree', url: fleet.serverDir, channel: 'stable', autoPull: false },
      fleet: { url: fleet.serverDir, trustedKeys: [fleet.key.publicKey], machineClass: 'lab' },
    });
    const t = fleet.makeTree('v2', '2.0-beta', 30);
    publishRsyncTree({ treeDir: t, outDir: fleet.serverDir, version: '2.0-beta', channel: 'beta', privateKeyPem: fleet.key.privateKeyPem });
    const policyFile = path.join(fleet.dir, 'policy.json');
    fs.writeFileSync(policyFile, JSON.stringify({ format: 'tabula-policy-1', channel: 'stable', checkIntervalHours: 12, classes: { lab: { channel: 'beta' } } }));
    runFleet(['sign-policy', '--policy', policyFile, '--key', keyFile(), '--out', fleet.serverDir]);
    await startHeadlessAgent(sb);

    const checked = (await json(['image', 'check'])).value;
    expect(checked.channel).toBe('beta');
    expect(checked.available.version).toBe('2.0-beta');
    expect(checked.policyProblem).toBeNull();
    // The helper reads the same policy: it installs the beta version.
    const pulled = (await json(['image', 'pull'])).value;
    expect(pulled.staged.version).toBe('2.0-beta');

    const served = path.join(fleet.serverDir, 'policy.json');
    fs.writeFileSync(served, fs.readFileSync(served, 'utf8').replace('"beta"', '"stable"'));
    const tampered = (await json(['image', 'check'])).value;
    expect(tampered.policyProblem).toMatch(/fleet policy is not signed by a fleet key this machine trusts/);
    expect(tampered.channel).toBe('stable');
    // Without the policy the machine would follow stable (1.0): older than the 2.0-beta it took,
    // so it is refused rather than installed (going back needs a signed pin).
    expect(tampered.state).toBe('stale');
    expect(tampered.reason).toMatch(/offers version 1\.0, older than 2\.0-beta already accepted; ignored/);
    expect(tampered.staged.version).toBe('2.0-beta');
    expect((await sb.cli(['image', 'status'])).stdout).toContain('fleet policy ignored');
  });

  it('tabula-fleet refuses to sign a policy with unknown keys', () => {
    const policyFile = path.join(fleet.dir, 'bad-policy.json');
    fs.writeFileSync(policyFile, JSON.stringify({ format: 'tabula-policy-1', chanel: 'beta' }));
    expect(() => runFleet(['sign-policy', '--policy', policyFile, '--key', keyFile(), '--out', fleet.serverDir])).toThrow(/Nothing was signed/);
    expect(fs.existsSync(path.join(fleet.serverDir, 'policy.json'))).toBe(false);
  });
});

describe('signed fleet commands', () => {
  const command = (verb: string, extra: string[] = [], key = keyFile()) =>
    runFleet(['command', verb, '--machine', testMachineId, '--expires', '1h', '--key', key, '--out', fleet.serverDir, ...extra]);

  it('runs a command once; the replay, an expired one, a forged one and one for another machine are rejected', async () => {
    await startHeadlessAgent(sb);
    command('diagnostics');
    const first = await json(['fleet', 'poll']);
    expect(first.value.outcome).toBe('done');
    const file = /written to (\S+)\.$/.exec(first.value.message)![1]!;
    expect(JSON.parse(fs.readFileSync(file, 'utf8')).identity.machineId).toBe(testMachineId);

    const replay = await json(['fleet', 'poll']);
    expect(replay.value.outcome).toBe('rejected');
    expect(replay.value.message).toMatch(/^Replay: /);

    runFleet(['command', 'pull', '--machine', testMachineId, '--expires', '1m', '--key', keyFile(), '--out', fleet.serverDir], () => new Date(Date.now() - 120_000));
    expect((await json(['fleet', 'poll'])).value.message).toMatch(/expired/);

    const stranger = path.join(fleet.dir, 'stranger.key');
    fs.writeFileSync(stranger, generateKeyPair().privateKeyPem);
    command('pull', [], stranger);
    expect((await json(['fleet', 'poll'])).value.message).toMatch(/not signed by a fleet key this machine trusts/);

    runFleet(['command', 'pull', '--machine', 'f'.repeat(32), '--expires', '1h', '--key', keyFile(), '--out', fleet.serverDir]);
    fs.renameSync(path.join(fleet.serverDir, 'commands', `${'f'.repeat(32)}.json`), path.join(fleet.serverDir, 'commands', `${testMachineId}.json`));
    fs.renameSync(path.join(fleet.serverDir, 'commands', `${'f'.repeat(32)}.json.sig`), path.join(fleet.serverDir, 'commands', `${testMachineId}.json.sig`));
    expect((await json(['fleet', 'poll'])).value.message).toMatch(/for another machine/);

    // Edited after signing (verb changed): the signature no longer holds.
    command('diagnostics');
    const cmdFile = path.join(fleet.serverDir, 'commands', `${testMachineId}.json`);
    fs.writeFileSync(cmdFile, fs.readFileSync(cmdFile, 'utf8').replace('"diagnostics"', '"reimage"'));
    // Logged as what it claimed to be: a rejected reimage, not a pull.
    expect((await json(['fleet', 'poll'])).value).toMatchObject({ outcome: 'rejected', verb: 'reimage' });
  });

  it('a remote reimage is refused while the home has files not on the storage', async () => {
    const agent = await startHeadlessAgent(sb);
    command('reimage');
    const r = await json(['fleet', 'poll']);
    expect(r.value.outcome).toBe('refused');
    expect(r.value.message).toMatch(/not on the storage yet/);
    const reimage = await call(agent, 'helpdesk.plan');
    expect(reimage.result.home.paths).toContain('~/Documents/notes.txt');
    expect(fs.existsSync(path.join(root, 'var/lib/tabula/reset-on-boot'))).toBe(false);
  });
});

describe('helpdesk reimage', () => {
  it('is refused with the unsynced files listed, then runs after a backup, with a countdown', async () => {
    const agent = await startHeadlessAgent(sb);
    const plan = (await call(agent, 'helpdesk.plan')).result;
    expect(plan.identity.machineId).toBe(testMachineId);
    expect(plan.refusedReason).toMatch(/1 file in the home is not on the storage yet/);
    expect(plan.steps.join(' ')).toMatch(/home folder .* not touched/);

    const refused = await call(agent, 'helpdesk.reimage');
    expect(refused.error.code).toBe('reimage-refused');
    expect(refused.error.details).toEqual(['~/Documents/notes.txt']);
    // An override must name the count the helpdesk saw.
    expect((await call(agent, 'helpdesk.reimage', { override: true, acknowledgedCount: 5 })).error.message).toMatch(/list of unsynced files changed/);

    expect((await sb.cli(['backup', 'now'])).code).toBe(0);
    expect((await call(agent, 'helpdesk.plan')).result.refusedReason).toBeNull();
    const started = (await call(agent, 'helpdesk.reimage')).result;
    expect(started.state).toBe('countdown');
    expect(started.reason).toMatch(/in 1 seconds\. Your home folder is kept/);
    await expect.poll(async () => (await call(agent, 'status.get')).result.imageUpdate.reimagePending, { timeout: 20_000 }).toBe(true);
    expect(fs.existsSync(path.join(root, 'var/lib/tabula/reset-on-boot'))).toBe(true);
    expect(fs.readFileSync(path.join(sb.home, 'Documents/notes.txt'), 'utf8')).toBe('Remember the milk.\n');
  });

  it('the countdown can be cancelled and nothing changes', async () => {
    writeSystemConfig(root, { image: { backend: 'rsync-tree', url: fleet.serverDir, autoPull: false }, fleet: { trustedKeys: [fleet.key.publicKey], reimageCountdownSeconds: 30 } });
    const agent = await startHeadlessAgent(sb);
    expect((await sb.cli(['backup', 'now'])).code).toBe(0);
    expect((await call(agent, 'helpdesk.reimage')).result.state).toBe('countdown');
    expect((await call(agent, 'helpdesk.cancelReimage')).result.state).toBe('cancelled');
    expect(fs.existsSync(path.join(root, 'var/lib/tabula/reset-on-boot'))).toBe(false);
  });
});

describe('tabula-helper', () => {
  const helper = path.join(repoRoot, 'build/main/helper.js');
  const runHelper = (args: string[], env: NodeJS.ProcessEnv = sb.env) => spawnSync(process.execPath, [helper, ...args], { env, encoding: 'utf8', timeout: 30_000 });

  it('answers status for the machine root it is given when run by root directly', () => {
    const r = runHelper(['status']);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout.trim().split('\n').at(-1)!).result.deployments.booted.version).toBe('1.0');
  });

  it('a pull that checks but cannot stage (a tampered image) exits non-zero, with the check and the reason in its result and the reason on stderr', () => {
    publishV2();
    fs.writeFileSync(path.join(fleet.serverDir, 'images/2.0/tree/usr/share/data/d0/f0.bin'), 'bad in 2.0\n');
    const r = runHelper(['pull']);
    expect(r.status).toBe(1);
    const last = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    expect(last.type).toBe('result');
    expect(last.result.available.version).toBe('2.0');
    expect(last.result.pulled).toBeNull();
    expect(last.result.stageFailed.code).toBe('image-invalid');
    expect(r.stderr).toMatch(/^tabula-helper: .*does not match its signed manifest/m);
    expect(readSymlink(path.join(root, 'var/lib/tabula/next'))).toBe('deployments/1.0');

    // A sound 3.0 on offer: the pull stages it and succeeds.
    publishRsyncTree({ treeDir: fleet.makeTree('v3', '3.0', 30), outDir: fleet.serverDir, version: '3.0', channel: 'stable', privateKeyPem: fleet.key.privateKeyPem });
    const again = runHelper(['pull']);
    expect(again.status).toBe(0);
    expect(JSON.parse(again.stdout.trim().split('\n').at(-1)!).result).toMatchObject({ pulled: { version: '3.0' } });
    expect(readSymlink(path.join(root, 'var/lib/tabula/next'))).toBe('deployments/3.0');
  });

  it('ignores TABULA_ROOT under pkexec (the caller shapes that environment)', () => {
    const r = runHelper(['status'], { ...sb.env, PKEXEC_UID: '1000' });
    const last = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    // The real / of this test machine has no Tabula image config.
    expect(last.type).toBe('error');
    expect(last.error.code).toBe('image-not-configured');
  });

  // 25 helper processes: on a loaded 2-core machine that is more than the default 30 s.
  it('refuses every argument list outside its closed verb set, touching nothing', { timeout: 120_000 }, () => {
    const before = fs.readdirSync(path.join(root, 'var/lib/tabula'), { recursive: true }).sort();
    const arg = fc.oneof(fc.constantFrom('stage', 'status', 'check', 'rollback', 'reimage', '--check', '--version', '../../etc', '/etc/shadow', ';rm -rf /', '$(id)', '-rf', ''), fc.string({ maxLength: 12 }));
    fc.assert(
      fc.property(fc.array(arg, { maxLength: 4 }), (args) => {
        const valid = args.length === 1 && ['stage', 'status', 'check', 'rollback', 'reimage'].includes(args[0]!);
        fc.pre(!valid);
        const r = runHelper(args);
        expect(r.status).toBe(64);
        expect(JSON.parse(r.stdout.trim()).error.code).toBe('invalid-argument');
      }),
      { numRuns: 25 },
    );
    expect(fs.readdirSync(path.join(root, 'var/lib/tabula'), { recursive: true }).sort()).toEqual(before);
  });
});

// TUF's rollback and freeze attacks against the rsync-tree backend, with a real headless agent
// (autoPull on), the real tabula-helper and real rsync from a fleet folder the attacker controls:
// - replay: the server sends an old, validly signed channel file; the laptop must neither stage
//   the old image nor un-stage the newer one, and says why;
// - downgrade: a newer, validly signed channel names an older version; refused unless the signed
//   fleet policy pins that version (the one way back);
// - freeze: the server keeps sending a once-valid channel past its expiry; the laptop says its
//   update data is out of date instead of "Up to date".
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { publishRsyncTree, writeChannel, writePolicy } from '../../src-main/fleet-publish';
import { readSymlink } from '../../src-main/core/image/deployments-dir';
import { createRsyncTreeBackend } from '../../src-main/core/image/rsync-tree';
import { createSandbox, startHeadlessAgent, type AgentSandbox } from '../fixtures/headless-agent';
import { createImageFleet, fakeBootloaderBoot, writeMachineId, writeSystemConfig, type ImageFleet } from '../fixtures/image-fleet';

let sb: AgentSandbox;
let fleet: ImageFleet;
let root: string;
const channelFile = () => path.join(fleet.serverDir, 'channels/stable.json');
const nextTarget = () => readSymlink(path.join(root, 'var/lib/tabula/next'));
const day = 86_400_000;

function systemConfig(autoPull: boolean) {
  writeSystemConfig(root, {
    image: { backend: 'rsync-tree', url: fleet.serverDir, channel: 'stable', autoPull },
    fleet: { url: fleet.serverDir, trustedKeys: [fleet.key.publicKey] },
  });
}

const publish = (version: string, extra: { now?: Date; validForMs?: number } = {}) =>
  publishRsyncTree({ treeDir: fleet.makeTree(`v${version}`, version, 10), outDir: fleet.serverDir, version, channel: 'stable', privateKeyPem: fleet.key.privateKeyPem, ...extra });

/** The channel file and its signature as they are now: what an attacker records to replay later. */
function record(): () => void {
  const bytes = fs.readFileSync(channelFile());
  const sig = fs.readFileSync(`${channelFile()}.sig`);
  return () => {
    fs.writeFileSync(channelFile(), bytes);
    fs.writeFileSync(`${channelFile()}.sig`, sig);
  };
}

const status = async (cmd: 'check' | 'status') => {
  const r = await sb.cli(['image', cmd, '--json']);
  return { code: r.code, ...(JSON.parse(r.stdout) as { state: string; reason: string; staged: { version: string } | null; available: { version: string } | null; serverData: { serial: number; expires: string } | null }) };
};

beforeEach(async () => {
  sb = createSandbox();
  root = sb.env.TABULA_ROOT!;
  fleet = createImageFleet({ root });
  fs.mkdirSync(path.join(sb.dir, 'nas'));
  sb.writeUserConfig({ storage: { url: path.join(sb.dir, 'nas') } });
  writeMachineId(root);
  systemConfig(true);
});
afterEach(async () => {
  await sb.dispose();
  fleet.dispose();
});

async function bootV1() {
  publish('1.0');
  const b = createRsyncTreeBackend({ root, source: { url: fleet.serverDir, sshOptions: [], connectTimeoutSeconds: 5 }, channel: 'stable', trustedKeys: [fleet.key.publicKey] });
  await b.stage();
  b.close();
  fakeBootloaderBoot(root);
}

describe('replay of an old channel file', () => {
  it('does not stage the old image, keeps the newer one staged, and says why', async () => {
    await bootV1();
    const replayV1 = record();
    const oldSerial = JSON.parse(fs.readFileSync(channelFile(), 'utf8')).serial as number;
    publish('2.0');
    await startHeadlessAgent(sb);
    // autoPull stages 2.0 by itself.
    let s = await status('check');
    expect(s.staged?.version).toBe('2.0');
    expect(nextTarget()).toBe('deployments/2.0');
    const accepted = s.serverData!.serial;

    replayV1();
    s = await status('check');
    expect(s.code).toBe(1);
    expect(s.state).toBe('stale');
    expect(s.reason).toBe(`The update server sent an older channel (serial ${oldSerial} < ${accepted}); ignored.`);
    expect(s.staged?.version).toBe('2.0');
    expect(nextTarget()).toBe('deployments/2.0');
    // The CLI a person runs shows the same.
    expect((await sb.cli(['image', 'status'])).stdout).toContain('The update server sent an older channel');

    // The root helper refuses it on its own too (a caller that skips the agent gains nothing).
    const helper = await sb.cli(['image', 'pull', '--json']);
    expect(JSON.parse(helper.stdout).state).toBe('stale');
    expect(nextTarget()).toBe('deployments/2.0');
  });

  it('a restarted agent and helper still remember the newest serial (root-owned record)', async () => {
    await bootV1();
    const replayV1 = record();
    publish('2.0');
    const agent = await startHeadlessAgent(sb);
    expect((await status('check')).staged?.version).toBe('2.0');
    await agent.stop();
    replayV1();
    await startHeadlessAgent(sb);
    const s = await status('check');
    expect(s.state).toBe('stale');
    expect(s.reason).toMatch(/older channel \(serial \d+ < \d+\); ignored/);
    expect(nextTarget()).toBe('deployments/2.0');
    const trust = fs.statSync(path.join(root, 'var/lib/tabula/trust.json'));
    expect(trust.uid).toBe(0);
  });
});

describe('a newer channel naming an older version', () => {
  it('is refused; a signed policy pin naming the version is the way back', async () => {
    await bootV1();
    publish('2.0');
    await startHeadlessAgent(sb);
    expect((await status('check')).staged?.version).toBe('2.0');

    // Validly signed, higher serial, but it names 1.0: a downgrade nobody signed off.
    writeChannel(fleet.serverDir, 'stable', '1.0', fleet.key.privateKeyPem);
    let s = await status('check');
    expect(s.state).toBe('stale');
    expect(s.reason).toBe('The update server offers version 1.0, older than 2.0 already accepted; ignored. Going back needs a pin naming 1.0 in the signed fleet policy.');
    expect(nextTarget()).toBe('deployments/2.0');

    writePolicy(fleet.serverDir, { format: 'tabula-policy-1', pin: '1.0' }, fleet.key.privateKeyPem);
    s = await status('check');
    expect(s.state).toBe('idle');
    expect(s.staged).toBeNull();
    expect(nextTarget()).toBe('deployments/1.0');
  });
});

describe('a frozen server', () => {
  it('an expired channel file is refused: the status says the data is out of date, not up to date', async () => {
    // Signed eight days ago, valid for seven.
    publish('1.0', { now: new Date(Date.now() - 8 * day) });
    const expires = JSON.parse(fs.readFileSync(channelFile(), 'utf8')).expires as string;
    await startHeadlessAgent(sb);
    const s = await status('check');
    expect(s.code).toBe(1);
    expect(s.state).toBe('stale');
    expect(s.reason).toMatch(/^Update server data is out of date since \d{4}-\d\d-\d\d \d\d:\d\d UTC/);
    expect(s.reason).toContain(new Date(expires).toISOString().replace('T', ' ').slice(0, 16));
    expect(s.reason).not.toMatch(/Up to date/);
    expect(nextTarget()).toBeNull();
  });

  it('a channel accepted while valid turns stale once it expires, though the server keeps sending it', { timeout: 60_000 }, async () => {
    await bootV1();
    // Valid for twelve more seconds.
    writeChannel(fleet.serverDir, 'stable', '1.0', fleet.key.privateKeyPem, { now: new Date(Date.now() - 3600_000 + 12_000), validForMs: 3600_000 });
    await startHeadlessAgent(sb);
    let s = await status('check');
    expect(s.state).toBe('idle');
    expect(s.reason).toBe('Up to date: version 1.0.');
    await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(s.serverData!.expires) - Date.now() + 200)));
    // Without a new check, the status read by the window, the tray and the CLI already says so.
    s = await status('status');
    expect(s.state).toBe('stale');
    expect(s.reason).toMatch(/^Update server data is out of date since /);
    s = await status('check');
    expect(s.state).toBe('stale');
  });
});

// The agent's image service on a fake clock with fake power and network probes (no battery or
// metered modem exists here), and the real helper code and rsync underneath (run in-process as
// root): the schedule, deferral with its reason, the automatic pull and "Restart to update".
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AgentEvent } from '../../src-main/common/contract';
import { createEventLog } from '../../src-main/common/event-log';
import { loadConfig } from '../../src-main/core/config';
import { publishRsyncTree } from '../../src-main/fleet-publish';
import type { HelperClient } from '../../src-main/core/image/helper-client';
import { parseHelperArgs, runHelperVerb } from '../../src-main/core/image/helper-verbs';
import { createImageService } from '../../src-main/core/image/image-service';
import { createRsyncTreeBackend } from '../../src-main/core/image/rsync-tree';
import type { PowerState } from '../../src-main/core/runtime/probes';
import { resolvePaths } from '../../src-main/core/paths';
import { createFakeClock } from '../fixtures/fake-clock';
import { createImageFleet, fakeBootloaderBoot, writeSystemConfig, type ImageFleet } from '../fixtures/image-fleet';

let fleet: ImageFleet;
beforeEach(async () => {
  fleet = createImageFleet();
  writeSystemConfig(fleet.root, { image: { backend: 'rsync-tree', url: fleet.serverDir, channel: 'stable', minBatteryPercent: 30 }, fleet: { trustedKeys: [fleet.key.publicKey] } });
  publishRsyncTree({ treeDir: fleet.makeTree('v1', '1.0', 20), outDir: fleet.serverDir, version: '1.0', channel: 'stable', privateKeyPem: fleet.key.privateKeyPem });
  await createRsyncTreeBackend({ root: fleet.root, source: { url: fleet.serverDir, sshOptions: [], connectTimeoutSeconds: 5 }, channel: 'stable', trustedKeys: [fleet.key.publicKey] }).stage();
  fakeBootloaderBoot(fleet.root);
});
afterEach(() => fleet.dispose());

/** The helper's own code, called in-process (this test runs as root, as the helper does). */
const inProcessHelper = (root: string): HelperClient => ({ run: (args, onProgress) => runHelperVerb(parseHelperArgs(args), root, onProgress) });

const asksServer = (args: string[]) => args[0] === 'check' || args[0] === 'pull';

function setup(opts: { checkGate?: Promise<void>; calls?: string[][] } = {}) {
  const clock = createFakeClock();
  const real = inProcessHelper(fleet.root);
  // The real helper, with the first run that asks the server (`check`, or `pull`: check then stage) held at a gate when the test gives one.
  const helper: HelperClient = {
    run: async (args, onProgress) => {
      opts.calls?.push(args);
      if (asksServer(args) && opts.checkGate) {
        const gate = opts.checkGate;
        opts.checkGate = undefined;
        await gate;
      }
      return real.run(args, onProgress);
    },
  };
  const fakePower: PowerState = { batteryPercent: 12, charging: false };
  const paths = resolvePaths({ HOME: path.join(fleet.dir, 'home'), TABULA_ROOT: fleet.root });
  const events = createEventLog(1000, () => new Date(clock.now()));
  const seen: AgentEvent[] = [];
  events.subscribe((e) => seen.push(e));
  const service = createImageService({
    paths,
    getSystemConfig: () => loadConfig(paths, { systemOnly: true }).config,
    events,
    helper,
    probes: { power: async () => ({ ...fakePower }), metered: async () => false },
    clock,
    random: () => 0.5,
  });
  return { clock, fakePower, service, seen };
}

async function until(cond: () => boolean, what: string) {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 25));
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}

describe('image service on a schedule', () => {
  it('waits on low battery with the reason and next check, then pulls by itself once charging', async () => {
    const { clock, fakePower, service, seen } = setup();
    await service.start();
    expect(service.status()).toMatchObject({ state: 'idle', booted: { version: '1.0' } });
    // First check: a random point in the first hour (random 0.5 → 30 min).
    expect(Date.parse(service.status().nextCheckAt!) - clock.now()).toBe(30 * 60_000);

    const t = fleet.makeTree('v2', '2.0', 20);
    fs.writeFileSync(path.join(t, 'usr/share/data/d0/f0.bin'), 'new\n');
    publishRsyncTree({ treeDir: t, outDir: fleet.serverDir, version: '2.0', channel: 'stable', privateKeyPem: fleet.key.privateKeyPem });

    await clock.advance(30 * 60_000);
    expect(service.status().state).toBe('deferred');
    expect(service.status().reason).toBe('Waiting for power: the battery is at 12% (below 30%) and not charging.');
    expect(Date.parse(service.status().nextCheckAt!) - clock.now()).toBe(15 * 60_000);

    fakePower.charging = true;
    await clock.advance(15 * 60_000);
    await until(() => service.status().state === 'staged', 'the automatic pull');
    expect(service.status()).toMatchObject({ state: 'staged', reason: 'Version 2.0 is ready: restart to update.', restartRequired: true, staged: { version: '2.0' } });
    // Progress reached the clients with bytes, and every state change carried its reason.
    expect(seen.some((e) => e.type === 'image-progress' && e.data.phase === 'verifying')).toBe(true);
    const changes = seen.filter((e): e is Extract<AgentEvent, { type: 'image-state-changed' }> => e.type === 'image-state-changed');
    expect(changes.map((e) => e.data.to)).toEqual(expect.arrayContaining(['deferred', 'checking', 'downloading', 'staged']));
    expect(changes.every((e) => e.data.reason.length > 0)).toBe(true);
    // Next check 6 h plus the machine's offset inside the window.
    expect(Date.parse(service.status().nextCheckAt!) - clock.now()).toBe(6.5 * 3600_000);
    service.stop();
  });

  it('a failed check shows the reason and backs off instead of waiting 6 hours', async () => {
    const { clock, fakePower, service } = setup();
    fakePower.batteryPercent = null;
    await service.start();
    fs.rmSync(path.join(fleet.serverDir, 'channels/stable.json.sig'));
    await clock.advance(30 * 60_000);
    await until(() => service.status().state === 'failed', 'the failed check');
    expect(service.status().reason).toMatch(/has no signature: refused/);
    expect(service.status().lastError?.code).toBe('signature-invalid');
    const backoff = Date.parse(service.status().nextCheckAt!) - clock.now();
    expect(backoff).toBeGreaterThanOrEqual(2.5 * 60_000);
    expect(backoff).toBeLessThanOrEqual(5 * 60_000);
    service.stop();
  });

  it('a version the laptop was rolled back from is not staged again by the schedule; the person\'s own pull brings it back', async () => {
    const { fakePower, service } = setup();
    fakePower.batteryPercent = null;
    const t = fleet.makeTree('v2', '2.0', 20);
    fs.writeFileSync(path.join(t, 'usr/share/data/d0/f0.bin'), 'new\n');
    publishRsyncTree({ treeDir: t, outDir: fleet.serverDir, version: '2.0', channel: 'stable', privateKeyPem: fleet.key.privateKeyPem });
    await createRsyncTreeBackend({ root: fleet.root, source: { url: fleet.serverDir, sshOptions: [], connectTimeoutSeconds: 5 }, channel: 'stable', trustedKeys: [fleet.key.publicKey] }).stage();
    fakeBootloaderBoot(fleet.root);
    await service.start();
    expect(service.status().booted?.version).toBe('2.0');
    await service.rollback(); // version 2 misbehaves: back to 1
    fakeBootloaderBoot(fleet.root);
    service.stop();

    const after = setup();
    after.fakePower.batteryPercent = null;
    await after.service.start();
    expect(after.service.status()).toMatchObject({ booted: { version: '1.0' }, rollback: { version: '2.0' } });
    await after.clock.advance(30 * 60_000); // the scheduled check sees 2.0 on the server
    await after.service.whenIdle();
    expect(after.service.status()).toMatchObject({ state: 'idle', staged: null, available: { version: '2.0' } });
    expect(after.service.status().reason).toMatch(/Version 2\.0 is available \(running 1\.0/);

    after.service.pull();
    await after.service.whenIdle();
    expect(after.service.status()).toMatchObject({ state: 'staged', staged: { version: '2.0' } });
    after.service.stop();
  });

  it('a scheduled check that comes due during a pull waits for it, and the schedule keeps going', async () => {
    let open!: () => void;
    const calls: string[][] = [];
    const { clock, fakePower, service } = setup({ checkGate: new Promise<void>((r) => (open = r)), calls });
    fakePower.batteryPercent = null;
    await service.start();
    const t = fleet.makeTree('v2', '2.0', 20);
    fs.writeFileSync(path.join(t, 'usr/share/data/d0/f0.bin'), 'new\n');
    publishRsyncTree({ treeDir: t, outDir: fleet.serverDir, version: '2.0', channel: 'stable', privateKeyPem: fleet.key.privateKeyPem });

    expect(service.pull()).toEqual({ started: true });
    await until(() => calls.some(asksServer), 'the pull to ask for the current version');
    // The scheduled check comes due while the pull still waits on the server.
    await clock.advance(30 * 60_000);
    open();
    await until(() => calls.filter(asksServer).length === 2, 'the scheduled check after the pull');
    await service.whenIdle();
    expect(service.status()).toMatchObject({ state: 'staged', staged: { version: '2.0' } });
    // The schedule is still armed: the next check is 6 h plus the offset away, not in the past.
    expect(clock.pending()).toBe(1);
    expect(Date.parse(service.status().nextCheckAt!) - clock.now()).toBe(6.5 * 3600_000);
    service.stop();
  });
});

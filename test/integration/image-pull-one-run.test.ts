// A person's "pull" is one tabula-helper run (one pkexec prompt, one process start, one look at the
// server) that checks the signed offer and then stages it: the check is still there, in the same
// run, before anything is fetched. The agent's image service over the real helper code (in-process,
// as root) and real rsync; each helper run the agent asks for is counted.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import type { AgentEvent } from '../../src-main/common/contract';
import { createEventLog } from '../../src-main/common/event-log';
import { loadConfig } from '../../src-main/core/config';
import { generateKeyPair } from '../../src-main/core/signing';
import { publishRsyncTree, writeSigned } from '../../src-main/fleet-publish';
import { readSymlink } from '../../src-main/core/image/deployments-dir';
import { parseHelperArgs, runHelperVerb } from '../../src-main/core/image/helper-verbs';
import { createImageService } from '../../src-main/core/image/image-service';
import { resolvePaths } from '../../src-main/core/paths';
import { createFakeClock } from '../fixtures/fake-clock';
import { createImageFleet, fakeBootloaderBoot, writeSystemConfig, type ImageFleet } from '../fixtures/image-fleet';

let fleet: ImageFleet;
const next = () => readSymlink(path.join(fleet.root, 'var/lib/tabula/next'));
const deployments = () => fs.readdirSync(path.join(fleet.root, 'var/lib/tabula/deployments')).sort();
const publish = (version: string) => publishRsyncTree({ treeDir: fleet.makeTree(`v${version}`, version, 20), outDir: fleet.serverDir, version, channel: 'stable', privateKeyPem: fleet.key.privateKeyPem });

function service() {
  const runs: string[][] = [];
  const seen: AgentEvent[] = [];
  const paths = resolvePaths({ HOME: path.join(fleet.dir, 'home'), TABULA_ROOT: fleet.root });
  const events = createEventLog(1000);
  events.subscribe((e) => seen.push(e));
  const s = createImageService({
    paths,
    getSystemConfig: () => loadConfig(paths, { systemOnly: true }).config,
    events,
    helper: {
      run: (args, onProgress) => {
        runs.push(args);
        return runHelperVerb(parseHelperArgs(args), fleet.root, onProgress);
      },
    },
    probes: { power: async () => ({ batteryPercent: null, charging: true }), metered: async () => false },
    clock: createFakeClock(),
    random: () => 0.5,
  });
  const reasons = () => seen.flatMap((e) => (e.type === 'image-state-changed' ? [e.data.reason] : []));
  return { s, runs, reasons };
}

async function pull(s: ReturnType<typeof service>['s']) {
  s.pull();
  await s.whenIdle();
  return s.status();
}

beforeEach(async () => {
  fleet = createImageFleet();
  writeSystemConfig(fleet.root, { image: { backend: 'rsync-tree', url: fleet.serverDir, channel: 'stable', autoPull: false }, fleet: { trustedKeys: [fleet.key.publicKey] } });
  publish('1.0');
  await runHelperVerb({ verb: 'stage' }, fleet.root);
  fakeBootloaderBoot(fleet.root);
});
afterEach(() => fleet.dispose());

it('a pull is one helper run: it checks, downloads the version its check found (and says which), and stages it', async () => {
  publish('2.0');
  const { s, runs, reasons } = service();
  await s.start();
  const after = await pull(s);
  expect(runs).toEqual([['status'], ['pull']]);
  expect(after).toMatchObject({ state: 'staged', staged: { version: '2.0' }, available: { version: '2.0' }, reason: 'Version 2.0 is ready: restart to update.' });
  expect(after.lastCheckAt).not.toBeNull();
  expect(after.lastPullBytes).toBeGreaterThan(0);
  // The agent had not seen 2.0 before this run: the helper's progress names it.
  expect(reasons()).toContain('Downloading version 2.0…');
  expect(next()).toBe('deployments/2.0');
  s.stop();

  // Nothing new on offer: the same single run checks and stages nothing.
  const again = service();
  await again.s.start();
  expect(await pull(again.s)).toMatchObject({ state: 'staged', staged: { version: '2.0' } });
  expect(again.runs).toEqual([['status'], ['pull']]);
  expect(again.reasons().some((r) => r.startsWith('Downloading'))).toBe(false);
  again.s.stop();
});

it('the single run still checks first: a channel file a stranger signed is refused and nothing is fetched or staged, though the agent had seen a valid offer', async () => {
  publish('2.0');
  const { s, runs } = service();
  await s.start();
  expect((await s.check()).reason).toBe('Version 2.0 is available (running 1.0).');
  // Between the check and the pull, the server (or someone in the middle) swaps the channel file
  // for one signed by a key this machine does not trust. 2.0's own tree and manifest stay valid:
  // a pull that staged what the agent had seen, without checking again, would install it.
  const channel = path.join(fleet.serverDir, 'channels/stable.json');
  writeSigned(channel, fs.readFileSync(channel), generateKeyPair().privateKeyPem);
  const after = await pull(s);
  expect(runs).toEqual([['status'], ['check'], ['pull']]);
  expect(after).toMatchObject({ state: 'failed', staged: null, lastError: { code: 'signature-invalid' } });
  expect(after.reason).toMatch(/not signed by a fleet key this machine trusts/);
  expect(next()).toBe('deployments/1.0');
  expect(deployments()).toEqual(['1.0']);
  s.stop();
});

/** 2.0 changes f1.bin; the server then sends other bytes for it than the signed manifest names. */
function publishTampered() {
  const t = fleet.makeTree('v2.0', '2.0', 20);
  fs.writeFileSync(path.join(t, 'usr/share/data/d1/f1.bin'), 'new in 2.0\n');
  publishRsyncTree({ treeDir: t, outDir: fleet.serverDir, version: '2.0', channel: 'stable', privateKeyPem: fleet.key.privateKeyPem });
  fs.writeFileSync(path.join(fleet.serverDir, 'images/2.0/tree/usr/share/data/d1/f1.bin'), 'evil in 2.0\n');
}

it('a tampered offer (a file changed after signing) is refused by the same run, named, and nothing is staged or kept', async () => {
  publishTampered();
  const { s, runs } = service();
  await s.start();
  const after = await pull(s);
  expect(runs).toEqual([['status'], ['pull']]);
  expect(after).toMatchObject({ state: 'failed', staged: null, lastError: { code: 'image-invalid' } });
  expect(after.lastError?.details?.join('\n')).toContain('usr/share/data/d1/f1.bin');
  expect(next()).toBe('deployments/1.0');
  expect(deployments()).toEqual(['1.0']);
  s.stop();
});

it('a pull that fails at staging still records its check: the person sees when it checked and what is on offer, not a stale "last checked"', async () => {
  publishTampered();
  const { s } = service();
  await s.start();
  expect(s.status().lastCheckAt).toBeNull();
  const after = await pull(s);
  expect(after).toMatchObject({ state: 'failed', lastError: { code: 'image-invalid' }, available: { version: '2.0' }, lastCheckAt: new Date(createFakeClock().now()).toISOString() });
  s.stop();
  // Kept across a restart of the agent, as any check is.
  const again = service();
  await again.s.start();
  expect(again.s.status()).toMatchObject({ lastCheckAt: after.lastCheckAt, available: { version: '2.0' }, reason: 'Version 2.0 is available (running 1.0).' });
  again.s.stop();
});

// A version that failed to start (systemd-boot's boot counting gave up on it and started the
// previous one) is never laid down again: not by a pull, and not by a reset while the channel still
// names it — the reset takes a fresh copy of the version running and says why. The agent's image
// service over the real helper code (in-process, as root) and real rsync, with a boot partition
// (ESP) in the sandbox root; only the restart itself is faked (fakeBootloaderBoot).
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { createEventLog } from '../../src-main/common/event-log';
import { loadConfig } from '../../src-main/core/config';
import { publishRsyncTree } from '../../src-main/fleet-publish';
import { readBootEntries, withBootEntries } from '../../src-main/core/image/boot-entries';
import { createRsyncTreeBackend } from '../../src-main/core/image/rsync-tree';
import { readSymlink } from '../../src-main/core/image/deployments-dir';
import { parseHelperArgs, runHelperVerb } from '../../src-main/core/image/helper-verbs';
import { createImageService } from '../../src-main/core/image/image-service';
import { createHelpdeskService } from '../../src-main/core/helpdesk/helpdesk-service';
import { resolvePaths } from '../../src-main/core/paths';
import { createFakeClock } from '../fixtures/fake-clock';
import { createImageFleet, fakeBootloaderBoot, writeSystemConfig, type ImageFleet } from '../fixtures/image-fleet';

let fleet: ImageFleet;
const esp = () => path.join(fleet.root, 'efi');
const marker = () => path.join(fleet.root, 'var/lib/tabula/reset-on-boot');
const next = () => path.basename(readSymlink(path.join(fleet.root, 'var/lib/tabula/next')) ?? '');

function publish(version: string) {
  const t = fleet.makeTree(`v${version}`, version, 5);
  // A bootable tree: the boot path copies its kernel and initramfs to the ESP.
  fs.writeFileSync(path.join(t, 'usr/lib/modules/6.1.0-test/initramfs.img'), `initramfs of ${version}\n`);
  publishRsyncTree({ treeDir: t, outDir: fleet.serverDir, version, channel: 'stable', privateKeyPem: fleet.key.privateKeyPem });
}

function service() {
  const paths = resolvePaths({ HOME: path.join(fleet.dir, 'home'), TABULA_ROOT: fleet.root });
  return createImageService({
    paths,
    getSystemConfig: () => loadConfig(paths, { systemOnly: true }).config,
    events: createEventLog(100),
    helper: { run: (args, onProgress) => runHelperVerb(parseHelperArgs(args), fleet.root, onProgress) },
    probes: { power: async () => ({ batteryPercent: null, charging: true }), metered: async () => false },
    clock: createFakeClock(),
    random: () => 0.5,
  });
}

beforeEach(async () => {
  fleet = createImageFleet();
  fs.mkdirSync(path.join(esp(), 'loader'), { recursive: true });
  writeSystemConfig(fleet.root, { image: { backend: 'rsync-tree', url: fleet.serverDir, channel: 'stable', autoPull: false }, fleet: { trustedKeys: [fleet.key.publicKey] } });
  publish('1.0');
  await runHelperVerb({ verb: 'stage' }, fleet.root);
  fakeBootloaderBoot(fleet.root);
});
afterEach(() => fleet.dispose());

it('a version that failed to start is not staged again, and a reset lays down the running version instead, saying why', async () => {
  publish('2.0');
  let s = service();
  await s.start();
  s.pull();
  await s.whenIdle();
  expect(s.status()).toMatchObject({ state: 'staged', staged: { version: '2.0' } });
  s.stop();

  // The restart: 2.0 never reaches its target; systemd-boot counts its tries down to 0 and starts 1.0.
  const entry = readBootEntries(esp()).find((e) => e.version === '2.0')!;
  fs.renameSync(path.join(esp(), 'loader/entries', entry.file), path.join(esp(), 'loader/entries', entry.file.replace(/\+\d+(-\d+)?\.conf$/, '+0-3.conf')));
  fakeBootloaderBoot(fleet.root, '1.0');

  s = service();
  await s.start();
  expect(s.status().reason).toBe("Version 2.0 failed to start; you're back on 1.0.");
  expect(next()).toBe('1.0');
  // The channel still names 2.0: a pull does not take it again, and the helper refuses it by name.
  s.pull();
  await s.whenIdle();
  expect(s.status()).toMatchObject({ staged: null, available: { version: '2.0' } });
  await expect(runHelperVerb({ verb: 'stage' }, fleet.root)).rejects.toThrow(/Version 2\.0 failed to start on this computer before, so it is not installed again/);

  // The helpdesk's reset: its steps name 1.0, and it lays down a fresh 1.0 (the version that
  // starts), not the channel's 2.0, and says why. (The home is a stand-in here: always backed up.)
  const helpdesk = createHelpdeskService({
    paths: resolvePaths({ HOME: path.join(fleet.dir, 'home'), TABULA_ROOT: fleet.root }),
    events: createEventLog(100),
    image: s,
    homeSafety: { unsyncedChanges: async () => ({ count: 0, paths: [], queued: 0, unknownReason: null }) },
    identity: () => ({ hostname: 'ann-laptop', machineId: null, primaryMac: null, machineClass: 'standard' }),
    lastBackupAt: () => null,
    countdownSeconds: () => 0,
    diagnostics: () => ({}),
  });
  expect((await helpdesk.plan()).steps[0]).toBe('Download a fresh, verified copy of the current image (version 1.0).');
  await helpdesk.reimage({});
  await expect.poll(() => helpdesk.status().state, { timeout: 20_000 }).toBe('done');
  expect(helpdesk.status().reason).toBe("The reset is ready: restart the computer to finish it. Your home folder stays as it is. Version 2.0, the channel's, failed to start on this computer, so the reset lays down a fresh copy of version 1.0, the one running.");
  helpdesk.stop();
  const after = s.status();
  expect(after.reimagePending).toBe(true);
  expect(after.reason).toBe("A reset to the pristine image is ready: restart to finish it. Version 2.0, the channel's, failed to start on this computer, so the reset lays down a fresh copy of version 1.0, the one running.");
  expect(JSON.parse(fs.readFileSync(marker(), 'utf8')).version).toBe('1.0');
  expect(next()).toBe('1.0');
  expect(readBootEntries(esp())[0]).toMatchObject({ version: '1.0' });
  s.stop();

  // A fixed 3.0 is published: the next reset takes it, with nothing to explain.
  publish('3.0');
  s = service();
  await s.start();
  const fixed = await s.reimage();
  expect(JSON.parse(fs.readFileSync(marker(), 'utf8')).version).toBe('3.0');
  expect(fixed.reason).toBe('A reset to the pristine image is ready: restart to finish it.');
  s.stop();
});

it('a damaged record of the versions that failed is never taken for "none failed": it is named, kept, and nothing is installed', async () => {
  publish('2.0');
  await runHelperVerb({ verb: 'stage' }, fleet.root);
  const entry = readBootEntries(esp()).find((e) => e.version === '2.0')!;
  fs.renameSync(path.join(esp(), 'loader/entries', entry.file), path.join(esp(), 'loader/entries', entry.file.replace(/\+\d+(-\d+)?\.conf$/, '+0-3.conf')));
  fakeBootloaderBoot(fleet.root, '1.0');
  expect((await runHelperVerb({ verb: 'status' }, fleet.root)).deployments.failedBoot).toEqual({ version: '2.0', bootedInstead: '1.0' });

  const record = path.join(fleet.root, 'var/lib/tabula/failed-boots.json');
  fs.writeFileSync(record, fs.readFileSync(record, 'utf8').slice(0, 30)); // a disk fault cuts it short
  const damaged = fs.readFileSync(record);
  await expect(runHelperVerb({ verb: 'stage' }, fleet.root)).rejects.toThrow(/record of versions that failed to start on this computer \(.*failed-boots\.json\) is not valid JSON .*no version is installed until it is repaired/);
  await expect(runHelperVerb({ verb: 'reimage' }, fleet.root)).rejects.toThrow(/failed-boots\.json\) is not valid JSON/);
  expect(fs.readFileSync(record)).toEqual(damaged);
  expect(next()).toBe('1.0');
  expect(fs.existsSync(marker())).toBe(false);
  fs.writeFileSync(record, JSON.stringify([{ version: '2.0', bootedInstead: '1.0', at: 'x'.repeat(2 << 20) }]));
  await expect(runHelperVerb({ verb: 'stage' }, fleet.root)).rejects.toThrow(/failed-boots\.json\) is too large/);
});

it('before staging, a running version whose entry systemd-bless-boot left counted is marked good once the boot is complete, so a broken next version has it to fall back to', async () => {
  const dir = path.join(esp(), 'loader/entries');
  const files = () => fs.readdirSync(dir).sort();
  // 1.0 runs from its first counted try and reached boot-complete.target, but its entry was not
  // blessed (the ostree laptop's session 9: systemd-bless-boot FAILED after a reimage).
  const first = readBootEntries(esp()).find((e) => e.version === '1.0')!;
  fs.renameSync(path.join(dir, first.file), path.join(dir, 'tabula-1.0+2-1.conf'));
  const helper = (complete: boolean) =>
    withBootEntries(fleet.root, createRsyncTreeBackend({ root: fleet.root, source: { url: fleet.serverDir, sshOptions: [], connectTimeoutSeconds: 5 }, channel: 'stable', trustedKeys: [fleet.key.publicKey] }), { bootComplete: () => complete });
  // Not judged yet (the target not reached): a pull stages 2.0 and leaves 1.0's counter to systemd.
  publish('2.0');
  const early = helper(false);
  expect((await early.stage()).version).toBe('2.0');
  early.close();
  expect(files()).toEqual(['tabula-1.0+2-1.conf', 'tabula-2.0+3.conf']);
  // The boot is complete: the next change (here a rollback, then a pull of 3.0) marks 1.0's entry
  // good first, as systemd-bless-boot would have; the new version's entry counts its tries.
  const later = helper(true);
  later.rollback();
  expect(files()).toEqual(['tabula-1.0.conf', 'tabula-2.0+3.conf']);
  publish('3.0');
  expect((await later.stage()).version).toBe('3.0');
  later.close();
  expect(files()).toEqual(['tabula-1.0.conf', 'tabula-3.0+3.conf']);
  // 3.0 never starts: its tries are spent and systemd-boot starts the good 1.0, which the status says.
  fs.renameSync(path.join(dir, 'tabula-3.0+3.conf'), path.join(dir, 'tabula-3.0+0-3.conf'));
  fakeBootloaderBoot(fleet.root, '1.0');
  expect((await runHelperVerb({ verb: 'status' }, fleet.root)).deployments.failedBoot).toEqual({ version: '3.0', bootedInstead: '1.0' });
  expect(readBootEntries(esp()).find((e) => e.version === '1.0')).toMatchObject({ file: 'tabula-1.0.conf', triesLeft: null });
});

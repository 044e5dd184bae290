// System updates and the helpdesk reset as a person sees them: a real headless agent, the real
// tabula-helper (run directly as root), rsync-tree over real rsync, the window in Chromium.
import { test as base, expect } from '@playwright/test';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { publishRsyncTree } from '../../src-main/fleet-publish';
import { createRsyncTreeBackend } from '../../src-main/core/image/rsync-tree';
import { createSandbox, startHeadlessAgent, type AgentSandbox, type RunningAgent } from '../fixtures/headless-agent';
import { axeViolations, goTo, lookAt, openWindow, sentence } from './window';
import { createImageFleet, fakeBootloaderBoot, testMachineId, writeMachineId, writeSystemConfig, type ImageFleet } from '../fixtures/image-fleet';
import { runFleet } from '../../src-main/fleet';

const test = base.extend<{ sandbox: AgentSandbox; fleet: ImageFleet; agent: RunningAgent }>({
  // eslint-disable-next-line no-empty-pattern
  sandbox: async ({}, use) => {
    const sandbox = createSandbox();
    fs.mkdirSync(path.join(sandbox.dir, 'nas'));
    sandbox.writeUserConfig({ storage: { url: path.join(sandbox.dir, 'nas') } });
    await use(sandbox);
    await sandbox.dispose();
  },
  fleet: async ({ sandbox }, use) => {
    const root = sandbox.env.TABULA_ROOT!;
    const fleet = createImageFleet({ root });
    writeMachineId(root);
    // A bandwidth cap slows the download enough to watch its progress.
    writeSystemConfig(root, {
      image: { backend: 'rsync-tree', url: fleet.serverDir, channel: 'stable', autoPull: false, bandwidthKBps: 3000 },
      fleet: { trustedKeys: [fleet.key.publicKey], reimageCountdownSeconds: 30 },
    });
    publishRsyncTree({ treeDir: fleet.makeTree('v1', '1.0', 20), outDir: fleet.serverDir, version: '1.0', channel: 'stable', privateKeyPem: fleet.key.privateKeyPem });
    await createRsyncTreeBackend({ root, source: { url: fleet.serverDir, sshOptions: [], connectTimeoutSeconds: 5 }, channel: 'stable', trustedKeys: [fleet.key.publicKey] }).stage();
    fakeBootloaderBoot(root);
    await use(fleet);
    fleet.dispose();
  },
  agent: async ({ sandbox, fleet: _fleet }, use) => {
    const agent = await startHeadlessAgent(sandbox);
    await use(agent);
    await agent.stop();
  },
});

test('an available update downloads with progress and ends in "Restart to update"', async ({ page, agent, fleet }) => {
  await openWindow(page, agent);
  await goTo(page, 'System');
  // The agent reads the installed versions through tabula-helper as it starts.
  await expect(page.getByTestId('update-booted')).toHaveText('1.0', { timeout: 30_000 });
  await expect(page.getByTestId('update-state')).toHaveText('Up to date');

  const t = fleet.makeTree('v2', '2.0', 20);
  fs.writeFileSync(path.join(t, 'usr/share/big.bin'), crypto.randomBytes(8 * 1024 * 1024));
  publishRsyncTree({ treeDir: t, outDir: fleet.serverDir, version: '2.0', channel: 'stable', privateKeyPem: fleet.key.privateKeyPem });

  await page.getByRole('button', { name: 'Check now' }).click();
  await expect(page.getByTestId('update-state')).toHaveText('Update available');
  await expect(page.getByTestId('update-reason')).toHaveText('Version 2.0 is available (running 1.0).');

  await page.getByRole('button', { name: 'Download update' }).click();
  await expect(page.getByTestId('update-state')).toHaveText('Downloading update');
  await expect(page.getByRole('progressbar', { name: 'Update progress' })).toBeVisible();
  await expect(page.getByTestId('update-progress')).toContainText(/Downloading · [1-9]\d*%/, { timeout: 15_000 });

  await expect(page.getByTestId('update-state')).toHaveText('Restart to update', { timeout: 30_000 });
  await expect(page.getByTestId('update-reason')).toHaveText('Version 2.0 is ready: restart to update.');
  await expect(page.getByTestId('update-staged')).toHaveText('2.0');
  await expect(page.getByRole('button', { name: 'Keep 1.0' })).toBeVisible();
  // Nothing else is wrong (the home is backed up first), so the top line says it.
  await goTo(page, 'Home');
  await page.getByRole('button', { name: 'Back up now' }).first().click();
  await lookAt(page, 'restart-to-update', { sentence: 'Restart to update to 2.0', tone: 'info' });
  await page.getByTestId('safety-action').click();
  await expect(page.getByRole('tab', { name: 'System' })).toHaveAttribute('aria-selected', 'true');
});

test('the helpdesk reset is refused while files wait for the backup, and allowed once it completed', async ({ page, agent, sandbox }) => {
  fs.writeFileSync(path.join(sandbox.home, 'Documents', 'thesis.odt'), 'chapter 1\n');
  await openWindow(page, agent);
  await goTo(page, 'Helpdesk');
  await expect(page.getByTestId('machine-identity')).toContainText('5c0ffee5c0ffee5c0ffee5c0ffee5c0f');
  const refused = page.getByTestId('reimage-refused');
  await expect(refused).toContainText('2 files in the home are not on the storage yet');
  await expect(refused).toContainText('~/Documents/thesis.odt');
  await expect(page.getByRole('button', { name: 'Reset this computer…' })).toBeDisabled();

  await page.getByTestId('safety-action').click();
  await expect(sentence(page)).toContainText('backed up just now');
  await expect(refused).toBeHidden();
  await expect(page.getByTestId('unsynced-count')).toHaveText('0 files');

  await page.getByRole('button', { name: 'Reset this computer…' }).click();
  const banner = page.getByTestId('reimage-status');
  await expect(banner).toContainText(/Resetting this computer in \d+ s\./);
  await expect(banner).toContainText('Your home folder is kept.');
  await page.getByRole('button', { name: 'Stop the reset' }).click();
  await expect(banner).toHaveText('The reset was cancelled; nothing was changed.');
  expect(fs.existsSync(path.join(sandbox.env.TABULA_ROOT!, 'var/lib/tabula/reset-on-boot'))).toBe(false);
});

test('a helpdesk reimage sent while files wait for the backup shows as waiting, and runs by itself after "Back up now"', async ({ page, sandbox, fleet }) => {
  const root = sandbox.env.TABULA_ROOT!;
  writeSystemConfig(root, {
    image: { backend: 'rsync-tree', url: fleet.serverDir, channel: 'stable', autoPull: false },
    fleet: { url: fleet.serverDir, trustedKeys: [fleet.key.publicKey], commandKeys: [fleet.key.publicKey], reimageCountdownSeconds: 3 },
  });
  const keyFile = path.join(fleet.dir, 'command.key');
  fs.writeFileSync(keyFile, fleet.key.privateKeyPem);
  runFleet(['command', 'reimage', '--machine', testMachineId, '--expires', '1h', '--key', keyFile, '--out', fleet.serverDir]);
  const agent = await startHeadlessAgent(sandbox);
  try {
    expect((await sandbox.cli(['fleet', 'poll'])).stdout).toMatch(/reimage .*: refused — Reimage requested by helpdesk — waiting for your files to be backed up/);
    // A window opened after the command came shows it, with the reason.
    await openWindow(page, agent);
    await goTo(page, 'Helpdesk');
    const banner = page.getByTestId('reimage-status');
    await expect(banner).toContainText('Reimage requested by helpdesk — waiting for your files to be backed up: 1 file in the home is not on the storage yet.');
    // The first line of the window (and of `tabula status`) says it too, with the action that lets it go.
    await lookAt(page, 'reimage-waiting', { sentence: 'Reimage requested by helpdesk — waiting for your files to be backed up', tone: 'warn' });
    expect((await sandbox.cli(['status'])).stdout).toContain('Safety:  Reimage requested by helpdesk — waiting for your files to be backed up');
    await page.getByTestId('safety-action').click(); // Back up now
    await expect(banner).toContainText(/Resetting this computer in \d+ s\./);
    await expect(banner).toContainText('The reset is ready: restart the computer to finish it.', { timeout: 30_000 });
    expect(fs.existsSync(path.join(root, 'var/lib/tabula/reset-on-boot'))).toBe(true);
  } finally {
    await agent.stop();
  }
});

test('a reset refused at click time (a file written after the page said "possible") shows the refusal in the reset card, and it stays', async ({ page, agent, sandbox }) => {
  await openWindow(page, agent);
  await page.getByTestId('safety-action').click(); // Back up now
  await expect(sentence(page)).toContainText('backed up just now');
  await goTo(page, 'Helpdesk');
  await expect(page.getByTestId('unsynced-count')).toHaveText('0 files');
  const reset = page.getByRole('button', { name: 'Reset this computer…' });
  await expect(reset).toBeEnabled();
  // The page still says a reset is possible; meanwhile the person saves a new file.
  fs.writeFileSync(path.join(sandbox.home, 'Documents', 'late.txt'), 'saved a moment ago\n');
  await reset.click();
  const feedback = page.getByTestId('feedback-reset');
  await expect(feedback).toContainText('Reset refused: 1 file in the home is not on the storage yet: back it up first, or override after checking the list.');
  await expect(feedback.getByRole('alert')).toBeVisible();
  // Where the action was taken: inside the reset card, not wiped by the plan reloading underneath.
  await expect(page.getByRole('region', { name: 'Reset to the pristine image' }).getByTestId('feedback-reset')).toBeVisible();
  await expect(page.getByTestId('reimage-refused')).toContainText('~/Documents/late.txt');
  await page.waitForTimeout(1500);
  await expect(feedback).toContainText('Reset refused');
  await expect(reset).toBeDisabled();
  expect(fs.existsSync(path.join(sandbox.env.TABULA_ROOT!, 'var/lib/tabula/reset-on-boot'))).toBe(false);
  expect(await axeViolations(page)).toEqual([]);
});

// The Preferences window as a person uses it: a real `tabula --headless` agent talking to a real
// cupsd (own port) and a real X server (Xorg dummy driver), shown in Debian's Chromium. Choosing the
// default printer and a display layout and pressing "Apply now" changes what CUPS and xrandr report.
import { test as base, expect, type Page } from '@playwright/test';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startCupsd, type CupsdFixture } from '../fixtures/cupsd';
import { goTo, openWindow } from './window';
import { createSandbox, startHeadlessAgent, type AgentSandbox, type RunningAgent } from '../fixtures/headless-agent';
import { startXorgDummy, type XorgFixture } from '../fixtures/xorg-dummy';

const test = base.extend<{ cups: CupsdFixture; xorg: XorgFixture; sandbox: AgentSandbox; agent: RunningAgent }>({
  // eslint-disable-next-line no-empty-pattern
  cups: async ({}, use) => {
    const cups = await startCupsd();
    cups.addQueue('office-lj', 'ipp://10.77.0.5/ipp/print');
    cups.addQueue('lab', 'dnssd://Lab%20Color._ipp._tcp.local/?uuid=1f0c9a9e-0000-4000-8000-00000000000a');
    await use(cups);
    await cups.stop();
  },
  // eslint-disable-next-line no-empty-pattern
  xorg: async ({}, use) => {
    const xorg = await startXorgDummy(2);
    xorg.plug('DUMMY0', { widthMm: 309, heightMm: 174 });
    xorg.plug('DUMMY1', { widthMm: 597, heightMm: 336 });
    await use(xorg);
    await xorg.stop();
  },
  sandbox: async ({ cups, xorg }, use) => {
    const sandbox = createSandbox();
    Object.assign(sandbox.env, cups.env, xorg.env);
    await use(sandbox);
    await sandbox.dispose();
  },
  agent: async ({ sandbox }, use) => {
    const agent = await startHeadlessAgent(sandbox);
    await use(agent);
    await agent.stop();
  },
});

async function openPreferences(page: Page, agent: RunningAgent, tab: 'Printers' | 'Displays' | 'Network') {
  await openWindow(page, agent);
  await goTo(page, 'Preferences');
  await page.getByRole('tab', { name: tab }).click();
}

test('choosing the default printer and paper size in Preferences applies them for CUPS', async ({ page, agent, sandbox, cups }) => {
  await openPreferences(page, agent, 'Printers');
  const panel = page.getByRole('tabpanel', { name: 'Printers' });
  await expect(panel).toContainText('Saved default: none');
  await panel.getByLabel('Default printer').selectOption('office-lj');
  await panel.getByLabel('Paper size').selectOption('A4');
  await panel.getByRole('button', { name: 'Save' }).click();
  await expect(panel).toContainText('Saved default: office-lj');
  await panel.getByRole('button', { name: 'Apply now' }).click();
  await expect(panel.getByRole('list', { name: 'Apply result' })).toContainText('Applied — Default printer: make office-lj the default (queue office-lj)');
  await expect(panel).toContainText('Default now: office-lj');

  const env = { ...sandbox.env, ...cups.env, LC_ALL: 'C' };
  expect(spawnSync('lpstat', ['-d'], { env, encoding: 'utf8' }).stdout).toMatch(/destination: office-lj/);
  expect(spawnSync('lpoptions', ['-p', 'office-lj'], { env, encoding: 'utf8' }).stdout).toMatch(/\bmedia=A4\b/);
  expect(JSON.parse(fs.readFileSync(path.join(sandbox.env.XDG_CONFIG_HOME!, 'tabula/prefs.json'), 'utf8')).printers.default.uri).toBe('ipp://10.77.0.5/ipp/print');
});

test('arranging the displays in Preferences and applying moves them with xrandr', async ({ page, agent, xorg }) => {
  await openPreferences(page, agent, 'Displays');
  const panel = page.getByRole('tabpanel', { name: 'Displays' });
  await expect(panel).toContainText('No layout is saved for these monitors yet.');
  await expect(panel.getByRole('status')).toBeEmpty(); // the live region for a layout that cannot be saved
  // The big monitor left of the laptop panel, at 1920x1080, and primary.
  await panel.getByLabel('Resolution of DUMMY1').selectOption('1920x1080');
  await panel.getByLabel('X position of DUMMY1').fill('0');
  await panel.getByLabel('X position of DUMMY0').fill('1920');
  await panel.getByLabel('Primary: DUMMY1').check();
  await panel.getByRole('button', { name: 'Save layout for these monitors' }).click();
  await expect(panel).toContainText('Saved layout for these monitors');
  await panel.getByRole('button', { name: 'Apply now' }).click();
  await expect(panel.getByRole('list', { name: 'Apply result' })).toContainText('Applied — Display layout');
  expect(xorg.layout()).toEqual({
    DUMMY0: { geometry: '2048x1536+1920+0', primary: false },
    DUMMY1: { geometry: '1920x1080+0+0', primary: true },
  });
  await expect(panel.getByTestId('monitor-DUMMY1')).toContainText('now 1920x1080+0+0, primary');
});

test('a Wi-Fi password that is too short is caught in the form; nothing is saved', async ({ page, agent, sandbox }) => {
  await openPreferences(page, agent, 'Network');
  const panel = page.getByRole('tabpanel', { name: 'Network' });
  // The form's message area is a live region before there is anything to say, so that a screen
  // reader announces the message when it appears (one inserted with its text is often not read).
  const region = panel.getByRole('status');
  await expect(region).toHaveAttribute('aria-live', 'polite');
  await expect(region).toBeEmpty();
  const before = await region.elementHandle();
  await panel.getByLabel('Network name (SSID)').fill('Home');
  await panel.getByLabel('Password').fill('short');
  await expect(panel).toContainText('A Wi-Fi password must be 8 to 63 characters long.');
  expect(await before!.textContent()).toBe('A Wi-Fi password must be 8 to 63 characters long.'); // the same region, now speaking
  // And the disabled button says why, to whoever reaches it with a screen reader.
  await expect(panel.getByRole('button', { name: 'Save network' })).toBeDisabled();
  await expect(panel.getByRole('button', { name: 'Save network' })).toHaveAccessibleDescription('A Wi-Fi password must be 8 to 63 characters long.');
  await panel.getByLabel('Network name (SSID)').fill('x'.repeat(33));
  await panel.getByLabel('Password').fill('long enough password');
  await expect(panel).toContainText('The network name must be 1 to 32 bytes long.');
  expect(fs.existsSync(path.join(sandbox.env.XDG_CONFIG_HOME!, 'tabula/prefs.json'))).toBe(false);
});

test('WPA2 Enterprise without a CA certificate needs the explicit "not checked" choice in the form', async ({ page, agent }) => {
  await openPreferences(page, agent, 'Network');
  const panel = page.getByRole('tabpanel', { name: 'Network' });
  await panel.getByLabel('Network name (SSID)').fill('CorpNet');
  await panel.getByLabel('Security').selectOption('wpa2-enterprise-peap');
  await panel.getByLabel('Password').fill('a password');
  // Every message is a sentence for a person: no config field names (identity, caCert, noCaCertificate).
  const error = panel.getByRole('status');
  await expect(error).toHaveText('Enter your user name for this network.');
  await panel.getByLabel('User name').fill('ann');
  await expect(error).toHaveText('Choose the CA certificate that proves the network is genuine, or tick “No CA certificate is required”.');
  await expect(panel).not.toContainText('noCaCertificate');
  await expect(panel.getByRole('button', { name: 'Save network' })).toBeDisabled();
  await panel.getByLabel('CA certificate', { exact: true }).fill('certs/ca.crt');
  await expect(error).toHaveText('The CA certificate must be a full path, starting with /.');
  await panel.getByLabel('CA certificate', { exact: true }).fill('');
  await panel.getByLabel(/No CA certificate is required/).check();
  await expect(panel.getByLabel('CA certificate', { exact: true })).toBeDisabled();
  await expect(panel.getByRole('button', { name: 'Save network' })).toBeEnabled();
  await panel.getByLabel(/No CA certificate is required/).uncheck();
  await panel.getByLabel('CA certificate', { exact: true }).fill('/etc/ssl/certs/ca-certificates.crt');
  await expect(panel.getByRole('button', { name: 'Save network' })).toBeEnabled();
});

test('a key locked by the fleet is shown locked with the reason', async ({ page, sandbox }) => {
  fs.mkdirSync(path.join(sandbox.env.TABULA_ROOT!, 'etc/tabula'), { recursive: true });
  fs.writeFileSync(path.join(sandbox.env.TABULA_ROOT!, 'etc/tabula/prefs.json'), JSON.stringify({ locked: { 'printers.default': 'All printing goes through the secure queue.' } }));
  const agent = await startHeadlessAgent(sandbox);
  try {
    await openPreferences(page, agent, 'Printers');
    const panel = page.getByRole('tabpanel', { name: 'Printers' });
    await expect(panel.getByRole('note')).toContainText('Set by your organisation: All printing goes through the secure queue.');
    await expect(panel.getByLabel('Default printer')).toBeDisabled();
  } finally {
    await agent.stop();
  }
});

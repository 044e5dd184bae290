// "Am I safe?" at a glance: every state of the safety line, produced for real (the real agent, real
// rsync into a real storage folder, a real second laptop) except where hours must pass: there the
// agent's history file is dated back, and the test name says so. Each state is looked at 400×600 and
// 1280×800, light and dark, with axe (window.ts: lookAt).
import { test as base, expect, type Page } from '@playwright/test';
import fs from 'node:fs';
import path from 'node:path';
import { parseStorageUrl } from '../../src-main/core/storage-url';
import { localEndpoint, storageEndpoint } from '../../src-main/core/sync/endpoint';
import { runSync } from '../../src-main/core/sync/engine';
import { createSandbox, startHeadlessAgent, type AgentSandbox, type RunningAgent } from '../fixtures/headless-agent';
import { goTo, lookAt, openWindow, safety, sentence } from './window';

const test = base.extend<{ sandbox: AgentSandbox; nas: string }>({
  // eslint-disable-next-line no-empty-pattern
  sandbox: async ({}, use) => {
    const sandbox = createSandbox();
    await use(sandbox);
    await sandbox.dispose();
  },
  // A mounted NAS folder, as far as the agent can tell: it exists, outside the home.
  nas: async ({ sandbox }, use) => {
    const nas = path.join(sandbox.dir, 'nas', 'ann');
    fs.mkdirSync(nas, { recursive: true });
    await use(nas);
  },
});

// Each state is looked at four times (two sizes, two themes) with axe: more than the default minute.
test.describe.configure({ timeout: 150_000 });

function configure(sb: AgentSandbox, storage: string | null, backup: object = {}) {
  sb.writeUserConfig({ ...(storage ? { storage: { url: storage } } : {}), backup: { watchHome: false, retryMinSeconds: 60, ...backup } });
}

async function start(page: Page, sb: AgentSandbox, args: string[] = []): Promise<RunningAgent> {
  const agent = await startHeadlessAgent(sb, args);
  await openWindow(page, agent);
  return agent;
}

const backUp = (page: Page) => page.getByRole('button', { name: 'Back up now' }).first().click();

test('never backed up → "Back up now" → "Safe on nas/ann — backed up just now" (green)', async ({ page, sandbox, nas }) => {
  configure(sandbox, nas);
  await start(page, sandbox);
  await lookAt(page, 'never', { sentence: 'Not backed up to nas/ann yet', tone: 'warn' });
  await page.getByTestId('safety-action').click();
  await lookAt(page, 'safe', { sentence: 'Safe on nas/ann — backed up just now', tone: 'ok' });
  await expect(page.getByTestId('safety-action')).toHaveCount(0);
});

test('the built-in storage is "Local copy only" (amber), and switching to a NAS starts over and uploads no old local copy', async ({ page, sandbox, nas }) => {
  configure(sandbox, null);
  const agent = await start(page, sandbox);
  await backUp(page);
  await lookAt(page, 'local-only', { sentence: 'Local copy only — no network storage configured', tone: 'warn' });
  await expect(page.getByTestId('backup-storage')).toContainText('this laptop’s own disk');
  expect((await sandbox.cli(['status'])).stdout).not.toContain('All synced (nothing');

  // The person gets a real storage: nothing that was true of the old one carries over.
  configure(sandbox, nas);
  await expect(sentence(page)).toHaveText('Not backed up to nas/ann yet', { timeout: 15_000 });
  const status = await sandbox.cli(['status']);
  expect(status.stdout).toContain('Backup:  never');
  expect(status.stdout).not.toContain('All synced');
  await backUp(page);
  await expect(sentence(page)).toHaveText('Safe on nas/ann — backed up just now');
  expect(fs.readFileSync(path.join(nas, 'Documents/notes.txt'), 'utf8')).toBe('Remember the milk.\n');
  expect(fs.existsSync(path.join(nas, '.local/share/tabula')), 'the old local copy and its versions stay home').toBe(false);
  await agent.stop();
});

test('changes made since the last backup: "N changes only on this laptop since HH:MM" with Back up now', async ({ page, sandbox, nas }) => {
  // The home is watched; the debounce is long so the count can be read before the backup runs.
  configure(sandbox, nas, { watchHome: true, debounceSeconds: 600 });
  await start(page, sandbox);
  await backUp(page);
  await expect(sentence(page)).toHaveText(/^Safe on nas\/ann/);
  for (const n of [1, 2, 3]) fs.writeFileSync(path.join(sandbox.home, `Documents/draft-${n}.txt`), `draft ${n}\n`);
  await expect(sentence(page)).toHaveText(/^3 changes only on this laptop since \d\d?:\d\d( [AP]M)?$/, { timeout: 15_000 });
  await lookAt(page, 'pending', { sentence: /^3 changes only on this laptop since/, tone: 'info' });
  await page.getByTestId('safety-action').click();
  await expect(sentence(page)).toHaveText(/^Safe on nas\/ann — backed up just now$/);
});

test('storage not mounted: "Waiting for storage — N changes queued, next try HH:MM", the cause underneath, never "Offline"', async ({ page, sandbox }) => {
  configure(sandbox, path.join(sandbox.dir, 'unmounted-nas'));
  await start(page, sandbox);
  await backUp(page);
  await lookAt(page, 'queued', { sentence: /^Waiting for storage — 1 change queued, next try \d\d?:\d\d( [AP]M)?$/, tone: 'warn' });
  await expect(page.getByTestId('safety-detail')).toContainText('does not exist or is not mounted');
  await expect(page.getByText('Offline')).toHaveCount(0);
  await expect(page.getByText(/next try/i)).toHaveCount(1);
});

test('paused: amber "Backup paused" with Resume, in the window and after a reload', async ({ page, sandbox, nas }) => {
  configure(sandbox, nas);
  await start(page, sandbox);
  await backUp(page);
  await page.getByRole('button', { name: 'Pause backups' }).click();
  await lookAt(page, 'paused', { sentence: 'Backup paused', tone: 'warn' });
  await page.reload();
  await expect(sentence(page)).toHaveText('Backup paused');
  await page.getByTestId('safety-action').click();
  await expect(sentence(page)).toHaveText(/^Safe on nas\/ann/);
});

test('an unusable storage setting: red "Backup failed" with the reason and Try again', async ({ page, sandbox }) => {
  configure(sandbox, 'nas/relative');
  await start(page, sandbox);
  await backUp(page);
  await lookAt(page, 'error', { sentence: 'Backup failed', tone: 'danger' });
  await expect(page.getByTestId('safety-detail')).toContainText('is not usable');
  await expect(page.getByTestId('safety-action')).toHaveText('Try again');
});

test('syncing a large file at a capped bandwidth: "Backing up to nas/ann… N%" (blue)', async ({ page, sandbox, nas }) => {
  configure(sandbox, nas, { bandwidthLimitKBps: 400 });
  fs.writeFileSync(path.join(sandbox.home, 'Documents/video.bin'), Buffer.alloc(12 * 1024 * 1024, 7));
  await start(page, sandbox);
  await backUp(page);
  await lookAt(page, 'syncing', { sentence: /^Backing up to nas\/ann…/, tone: 'info' });
  await expect(sentence(page)).toHaveText(/^Safe on nas\/ann/, { timeout: 60_000 });
});

/** Writes the agent's history as if its last successful backup of `storage` ended `days` ago. */
function backdateHistory(sb: AgentSandbox, storage: string, days: number) {
  const at = new Date(Date.now() - days * 86_400_000).toISOString();
  const dir = path.join(sb.env.XDG_STATE_HOME!, 'tabula');
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const run = { id: 'old', startedAt: at, finishedAt: at, outcome: 'success', filesTransferred: 1, bytesTransferred: 19, pulled: 0, pushed: 1, deleted: 0, conflicts: 0, storage, error: null };
  fs.writeFileSync(path.join(dir, 'history.json'), JSON.stringify([run]), { mode: 0o600 });
}

test('stale (history file dated 3 days back): amber "Last backup 3 days ago", and one desktop notification', async ({ page, context, sandbox, nas }) => {
  await context.grantPermissions(['notifications']);
  // A spy around the real Notification API: the test reads what the window asked the desktop to show.
  await page.addInitScript(() => {
    const Real = window.Notification;
    const shown: { title: string; body?: string }[] = [];
    (window as unknown as { shown: typeof shown }).shown = shown;
    window.Notification = class extends Real {
      constructor(title: string, opts?: NotificationOptions) {
        super(title, opts);
        shown.push({ title, body: opts?.body });
      }
    } as typeof Notification;
  });
  configure(sandbox, nas);
  backdateHistory(sandbox, nas, 3);
  await start(page, sandbox);
  await lookAt(page, 'stale-amber', { sentence: 'Last backup 3 days ago', tone: 'warn' });
  const shown = () => page.evaluate(() => (window as unknown as { shown: { title: string }[] }).shown);
  await expect.poll(shown).toEqual([expect.objectContaining({ title: 'Tabula: last backup 3 days ago' })]);
  await page.reload();
  await expect(sentence(page)).toHaveText('Last backup 3 days ago');
  await page.waitForTimeout(500);
  expect(await shown(), 'once a day, not on every reload').toEqual([]);
});

test('stale (history file dated 8 days back): red "Last backup 8 days ago"', async ({ page, sandbox, nas }) => {
  configure(sandbox, nas);
  backdateHistory(sandbox, nas, 8);
  await start(page, sandbox);
  await lookAt(page, 'stale-red', { sentence: 'Last backup 8 days ago', tone: 'danger' });
});

test('the agent dies: "Not connected — retrying"; started again with `--port 0`, it comes back at the same address and the open window reconnects by itself', async ({ page, sandbox, nas }) => {
  configure(sandbox, nas);
  const agent = await start(page, sandbox);
  await backUp(page);
  await expect(sentence(page)).toHaveText(/^Safe on/);
  agent.kill();
  await lookAt(page, 'disconnected', { sentence: 'Not connected — retrying', tone: 'danger' });
  // As a person (or systemd) starts it again: `tabula --headless --port 0`, nothing remembered by hand.
  const again = await startHeadlessAgent(sandbox);
  expect(again.url).toBe(agent.url);
  await expect(sentence(page)).toHaveText(/^Safe on nas\/ann — backed up/, { timeout: 20_000 });
  // A clean stop and start, too.
  await again.stop();
  await expect(sentence(page)).toHaveText('Not connected — retrying', { timeout: 10_000 });
  const third = await startHeadlessAgent(sandbox);
  expect(third.url).toBe(agent.url);
  await expect(sentence(page)).toHaveText(/^Safe on nas\/ann — backed up/, { timeout: 20_000 });
  await third.stop();
});

test('a conflict: "1 file needs your decision", each version with time, size and laptop, Open and Show in folder, Keep both first', async ({ page, sandbox, nas }) => {
  // No desktop session here: a stand-in xdg-open on PATH records what the agent asked it to open.
  const bin = path.join(sandbox.dir, 'fake-desktop-bin');
  const opened = path.join(sandbox.dir, 'opened.txt');
  fs.mkdirSync(bin);
  fs.writeFileSync(path.join(bin, 'xdg-open'), `#!/bin/sh\nprintf '%s\\n' "$1" >> '${opened}'\n`, { mode: 0o755 });
  sandbox.env.PATH = `${bin}:${sandbox.env.PATH}`;
  delete sandbox.env.DBUS_SESSION_BUS_ADDRESS;
  configure(sandbox, nas);
  await start(page, sandbox);
  await backUp(page);
  await expect(sentence(page)).toHaveText(/^Safe on/);
  // The same person edits the file on another laptop, which syncs first.
  const other = path.join(sandbox.dir, 'laptop-b');
  fs.mkdirSync(other);
  const b = { home: localEndpoint(other), storage: storageEndpoint(parseStorageUrl(nas), [], 5), excludes: [], stateDir: path.join(sandbox.dir, 'b-state'), host: 'laptop-b' };
  await runSync(b);
  fs.writeFileSync(path.join(other, 'Documents/notes.txt'), 'Remember the milk and the bread (laptop B).\n');
  await runSync(b);
  fs.writeFileSync(path.join(sandbox.home, 'Documents/notes.txt'), 'Remember the milk and eggs, and call Sam back (this laptop).\n');
  await backUp(page);

  await lookAt(page, 'decision', { sentence: '1 file needs your decision', tone: 'warn' });
  await page.getByTestId('safety-action').click();
  await expect(page.getByRole('heading', { name: 'Which version stays?' })).toBeFocused();
  const inbox = page.getByTestId('conflicts');
  const mine = inbox.getByTestId('version-this-laptop');
  const theirs = inbox.getByTestId('version-storage');
  await expect(mine).toContainText('This laptop');
  await expect(mine).toContainText('61 B');
  await expect(mine).toContainText('made on this laptop');
  await expect(theirs).toContainText('Storage');
  await expect(theirs).toContainText('44 B');
  // The storage's version names the laptop that wrote it (its record on the storage says so).
  await expect(theirs).toContainText('made on laptop-b');
  await expect(inbox.getByRole('button').filter({ hasText: /^Keep/ }).first()).toHaveText('Keep both');

  await mine.getByRole('button', { name: 'Open This laptop version of Documents/notes.txt' }).click();
  await theirs.getByRole('button', { name: 'Show Storage version of Documents/notes.txt in folder' }).click();
  await expect.poll(() => (fs.existsSync(opened) ? fs.readFileSync(opened, 'utf8').trim().split('\n') : [])).toEqual([
    path.join(sandbox.home, 'Documents/notes.txt'),
    path.join(sandbox.home, 'Documents'),
  ]);

  await inbox.getByRole('button', { name: 'Keep both versions of Documents/notes.txt' }).click();
  await expect(page.getByTestId('feedback-conflicts')).toHaveText('Documents/notes.txt: kept both versions.');
  await expect(sentence(page)).toHaveText(/^Safe on nas\/ann/, { timeout: 20_000 });
});

test('two conflicts on one file: each names its copy, and "Keep the storage’s" on the second settles that one only', async ({ page, sandbox, nas }) => {
  configure(sandbox, nas);
  await start(page, sandbox);
  await backUp(page);
  await expect(sentence(page)).toHaveText(/^Safe on/);
  const other = path.join(sandbox.dir, 'laptop-b');
  fs.mkdirSync(other);
  const b = { home: localEndpoint(other), storage: storageEndpoint(parseStorageUrl(nas), [], 5), excludes: [], stateDir: path.join(sandbox.dir, 'b-state'), host: 'laptop-b' };
  await runSync(b);
  const edit = (dir: string, text: string, minutesAgo: number) => {
    const f = path.join(dir, 'Documents/notes.txt');
    fs.writeFileSync(f, text);
    fs.utimesSync(f, new Date(Date.now() - minutesAgo * 60_000), new Date(Date.now() - minutesAgo * 60_000));
  };
  // Twice: edited here, then on laptop B (newer), and B syncs first.
  for (const [round, ago] of [[1, 30], [2, 10]] as const) {
    edit(sandbox.home, `mine ${round}\n`, ago + 2);
    edit(other, `laptop B ${round}\n`, ago);
    await runSync(b);
    await backUp(page);
    await expect(sentence(page)).toHaveText(`${round} ${round === 1 ? 'file needs' : 'files need'} your decision`, { timeout: 20_000 });
  }
  await lookAt(page, 'two-decisions', { sentence: '2 files need your decision', tone: 'warn' });
  const items = page.getByTestId('conflicts').getByRole('listitem');
  await expect(items).toHaveCount(2);
  await expect(items.nth(0)).toContainText(/Documents\/notes\.txt \(copy notes\.conflict-.*\.txt\)/);
  const second = (await items.nth(1).locator('strong').textContent())!;
  const copy = /\(copy (.*)\)$/.exec(second)![1]!;
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.emulateMedia({ colorScheme: 'dark' });
  await items.nth(1).getByRole('button', { name: /^Keep the storage’s version of/ }).click();
  await expect(page.getByTestId('feedback-conflicts')).toHaveText('Documents/notes.txt: kept the storage’s version.');
  await expect(items).toHaveCount(1);
  await expect(items.nth(0)).not.toContainText(copy);
  await expect(sentence(page)).toHaveText('1 file needs your decision', { timeout: 20_000 });
  // Only the second copy went; the first is still there to decide on.
  const docs = fs.readdirSync(path.join(sandbox.home, 'Documents')).sort();
  expect(docs).toHaveLength(2);
  expect(docs).not.toContain(copy);
  expect(fs.readFileSync(path.join(sandbox.home, 'Documents/notes.txt'), 'utf8')).toBe('laptop B 2\n');
});

test('a sync refused for safety: "Backup stopped to protect your files", the count once and right past the 50 files named, "Sync anyway" readable in both themes', async ({ page, sandbox, nas }) => {
  // More deletions than the 50 files a refusal names: every count shown is still the whole count.
  for (let i = 0; i < 60; i++) fs.writeFileSync(path.join(sandbox.home, 'Documents', `report-${i}.txt`), `report ${i}\n`);
  configure(sandbox, nas);
  await start(page, sandbox);
  await backUp(page);
  await expect(sentence(page)).toHaveText(/^Safe on/);
  // On another laptop most of the reports are deleted and pushed with --force: the next sync here
  // would delete them in this home too.
  const other = path.join(sandbox.dir, 'laptop-b');
  fs.mkdirSync(other);
  const b = { home: localEndpoint(other), storage: storageEndpoint(parseStorageUrl(nas), [], 5), excludes: [], stateDir: path.join(sandbox.dir, 'b-state'), host: 'laptop-b' };
  await runSync(b);
  for (let i = 0; i < 55; i++) fs.rmSync(path.join(other, 'Documents', `report-${i}.txt`));
  await runSync({ ...b, force: true });
  await backUp(page);
  await lookAt(page, 'refused', { sentence: 'Backup stopped to protect your files', tone: 'warn' });
  await expect(page.getByText('--force')).toHaveCount(0);
  await expect(page.getByText(/would have deleted/)).toHaveCount(0);
  await expect(page.getByTestId('safety')).toContainText('It would delete 55 files; nothing was changed.');
  const card = page.getByTestId('would-delete');
  await expect(card).toContainText('This sync would delete 55 of 61 files in your home (more than 50%).');
  // Said once: not again as a count above the list, and "Nothing was changed" only as its heading.
  expect((await card.innerText()).match(/55/g)).toHaveLength(1);
  expect((await card.innerText()).match(/Nothing was changed/g)).toHaveLength(1);
  await expect(card.getByRole('listitem')).toHaveCount(11);
  await expect(card.getByRole('listitem').last()).toHaveText('… and 45 more files');
  const anyway = page.getByRole('button', { name: 'Sync anyway' });
  for (const theme of ['light', 'dark'] as const) {
    await page.emulateMedia({ colorScheme: theme });
    expect(await contrastOf(anyway), `"Sync anyway" label contrast, ${theme}`).toBeGreaterThanOrEqual(4.5);
  }
  await anyway.click();
  await expect(sentence(page)).toHaveText(/^Safe on nas\/ann/, { timeout: 20_000 });
  expect(fs.existsSync(path.join(sandbox.home, 'Documents/report-0.txt'))).toBe(false);
});

test('pages: arrow keys move between tabs, the page remembers its tab across a reload', async ({ page, sandbox, nas }) => {
  configure(sandbox, nas);
  await start(page, sandbox);
  const home = page.getByRole('tab', { name: 'Home' });
  await home.focus();
  await page.keyboard.press('ArrowRight');
  await expect(page.getByRole('tab', { name: 'System' })).toBeFocused();
  await expect(page.getByRole('tab', { name: 'System' })).toHaveAttribute('aria-selected', 'true');
  await expect(page.getByRole('heading', { name: 'System image' })).toBeVisible();
  await page.keyboard.press('End');
  await expect(page.getByRole('tab', { name: 'Helpdesk' })).toBeFocused();
  await page.keyboard.press('ArrowRight');
  await expect(home).toBeFocused();
  await page.keyboard.press('ArrowLeft');
  await page.reload();
  await expect(page.getByRole('tab', { name: 'Helpdesk' })).toHaveAttribute('aria-selected', 'true');
  await expect(safety(page)).toBeVisible();
  // The token stays out of the address bar; the tab is not kept there either.
  expect(new URL(page.url()).hash).toBe('');
  await goTo(page, 'Home');
});

/** Contrast between a button's text colour and its background. */
async function contrastOf(locator: ReturnType<Page['locator']>): Promise<number> {
  const { fg, bg } = await locator.evaluate((el) => {
    const s = getComputedStyle(el);
    return { fg: s.color, bg: s.backgroundColor };
  });
  const lum = (css: string) => {
    const [r, g, b] = (css.match(/[\d.]+/g) ?? []).slice(0, 3).map((v) => {
      const c = Number(v) / 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    }) as [number, number, number];
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const [hi, lo] = [lum(fg), lum(bg)].sort((x, y) => y - x) as [number, number];
  return (hi + 0.05) / (lo + 0.05);
}

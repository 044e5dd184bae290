// The status window as a person sees it: a real `tabula --headless` agent in a sandbox, real rsync,
// the built React window in Debian's Chromium.
import { test as base, expect, type Page } from '@playwright/test';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createSandbox, startHeadlessAgent, type AgentSandbox, type RunningAgent } from '../fixtures/headless-agent';
import { openWindow, sentence } from './window';

const test = base.extend<{ sandbox: AgentSandbox; storage: string; agent: RunningAgent }>({
  // eslint-disable-next-line no-empty-pattern
  sandbox: async ({}, use) => {
    const sandbox = createSandbox();
    sandbox.writeOsRelease({ NAME: 'Tabula Workstation', IMAGE_ID: 'tabula-workstation', IMAGE_VERSION: '2026.11.3' });
    await use(sandbox);
    await sandbox.dispose();
  },
  // A mounted NAS folder, as far as the agent can tell: it exists, outside the home.
  storage: async ({ sandbox }, use) => {
    const storage = path.join(sandbox.dir, 'storage');
    fs.mkdirSync(storage);
    sandbox.writeUserConfig({ storage: { url: storage } });
    await use(storage);
  },
  agent: async ({ sandbox, storage: _storage }, use) => {
    const agent = await startHeadlessAgent(sandbox);
    await use(agent);
    await agent.stop();
  },
});

const sha256 = (file: string) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

/** 300 small files and 4 × 50 MB of random bytes: enough for several progress updates. */
function fillHome(home: string): string[] {
  const files: string[] = [];
  for (let i = 0; i < 300; i++) {
    const rel = `Projects/p${i % 10}/note-${i}.txt`;
    fs.mkdirSync(path.join(home, path.dirname(rel)), { recursive: true });
    fs.writeFileSync(path.join(home, rel), `note ${i}\n`.repeat(i + 1));
    files.push(rel);
  }
  fs.mkdirSync(path.join(home, 'Videos'));
  for (let i = 1; i <= 4; i++) {
    fs.writeFileSync(path.join(home, `Videos/clip-${i}.bin`), crypto.randomBytes(50 * 1024 * 1024));
    files.push(`Videos/clip-${i}.bin`);
  }
  return files;
}

/**
 * Records every state and progress text the backup card shows. A local copy of 200 MB takes about
 * half a second here, too short to catch by polling, but every frame a person could have seen is kept.
 */
async function recordBackupCard(page: Page) {
  await page.evaluate(() => {
    const seen: { state: string; progress: string | null; bar: number | null }[] = [];
    (window as unknown as { seen: typeof seen }).seen = seen;
    const text = (id: string) => document.querySelector(`[data-testid="${id}"]`)?.textContent ?? null;
    new MutationObserver(() => {
      const frame = { state: text('safety-sentence') ?? '', progress: text('backup-progress'), bar: document.querySelector('progress')?.value ?? null };
      const last = seen.at(-1);
      if (!last || last.state !== frame.state || last.progress !== frame.progress || last.bar !== frame.bar) seen.push(frame);
    }).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
  });
  return () => page.evaluate(() => (window as unknown as { seen: { state: string; progress: string | null; bar: number | null }[] }).seen);
}

test('shows the image version from os-release', async ({ page, agent }) => {
  await openWindow(page, agent);
  await expect(page.getByTestId('image-version')).toHaveText(/^Tabula Workstation 2026\.11\.3 · /);
  await expect(sentence(page)).toHaveText(/^Not backed up to .*storage yet$/);
});

test('"Back up now" shows progress, ends backed up, and the files are in storage', async ({ page, sandbox, storage, agent }) => {
  const files = fillHome(sandbox.home);
  await openWindow(page, agent);
  const seen = await recordBackupCard(page);

  await page.getByTestId('safety-action').click();

  await expect(sentence(page)).toHaveText(/^Safe on .*storage — backed up just now$/, { timeout: 30_000 });
  // The same word and count as the run: files, not "items" of a listing.
  await expect(page.getByTestId('last-run')).toHaveText('305 files backed up.');
  const frames = await seen();
  expect(frames, 'the top line said "Backing up…" with a percent, and the panel the phase').toContainEqual(
    expect.objectContaining({ state: expect.stringMatching(/^Backing up to .*storage…( \d{1,3}%)?$/), progress: expect.stringMatching(/^Backing up · \d{1,3}%/) }),
  );
  expect(frames.every((f) => !/items/.test(f.progress ?? '')), 'no "N of N items" count next to a "files" count').toBe(true);
  expect(frames.some((f) => f.bar !== null), 'the progress bar was shown').toBe(true);
  await expect(page.getByRole('progressbar')).toHaveCount(0);

  for (const rel of [...files, 'Documents/notes.txt']) {
    expect(sha256(path.join(storage, rel)), rel).toBe(sha256(path.join(sandbox.home, rel)));
  }
});

test('the backed-up state survives a reload and an agent restart', async ({ page, sandbox, agent }) => {
  await openWindow(page, agent);
  await page.getByRole('button', { name: 'Back up now' }).first().click();
  await expect(sentence(page)).toHaveText(/backed up just now$/);

  await page.reload();
  await expect(sentence(page)).toHaveText(/backed up just now$/);

  await agent.stop();
  const restarted = await startHeadlessAgent(sandbox);
  await openWindow(page, restarted);
  await expect(sentence(page)).toHaveText(/^Safe on .* — backed up just now$/);
});

test('the API refuses callers without the token and other web sites', async ({ request, agent }) => {
  const statusGet = `${agent.url}/api/call/status.get`;
  const auth = { authorization: `Bearer ${agent.token}` };
  expect((await request.post(statusGet, { data: {} })).status()).toBe(401);
  expect((await request.post(statusGet, { data: {}, headers: { ...auth, origin: 'https://evil.example' } })).status()).toBe(403);
  expect((await request.post(statusGet, { data: {}, headers: auth })).status()).toBe(200);
});

test('keyboard: Tab reaches "Back up now" with a visible focus ring, Enter starts a backup', async ({ page, agent }) => {
  await openWindow(page, agent);
  const button = page.getByRole('button', { name: 'Back up now' }).first();
  for (let i = 0; i < 10 && !(await button.evaluate((b) => b === document.activeElement)); i++) await page.keyboard.press('Tab');
  await expect(button).toBeFocused();
  await expect(button).toHaveCSS('outline-style', 'solid');

  await page.keyboard.press('Enter');
  await expect(sentence(page)).toHaveText(/backed up just now$/);
});

test.describe('dark theme', () => {
  test.use({ colorScheme: 'dark' });

  test('text is light on a dark background', async ({ page, agent }) => {
    await openWindow(page, agent);
    const { background, text } = await page.evaluate(() => {
      // What shows behind the body: its own background or, when transparent, the page's.
      const transparent = (c: string) => c === 'transparent' || c === 'rgba(0, 0, 0, 0)';
      const body = getComputedStyle(document.body);
      const background = transparent(body.backgroundColor) ? getComputedStyle(document.documentElement).backgroundColor : body.backgroundColor;
      return { background, text: body.color };
    });
    expect(luminance(background), `background ${background}`).toBeLessThan(0.1);
    expect(luminance(text), `text ${text}`).toBeGreaterThan(0.6);
    expect(contrast(background, text), 'WCAG AA contrast').toBeGreaterThanOrEqual(4.5);
  });
});

/** WCAG relative luminance of a CSS rgb()/rgba() colour. */
function luminance(css: string): number {
  const [r, g, b] = (css.match(/[\d.]+/g) ?? []).slice(0, 3).map((v) => {
    const c = Number(v) / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  if (r === undefined || g === undefined || b === undefined) throw new Error(`not an rgb colour: ${css}`);
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

function contrast(a: string, b: string): number {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x) as [number, number];
  return (hi + 0.05) / (lo + 0.05);
}

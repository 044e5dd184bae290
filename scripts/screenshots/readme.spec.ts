// Takes docs/*.png for the README from the real window: the tray-popup size (400×600) people see
// first, in light and dark, a conflict waiting for a decision, and the wide window.
// The agent runs as it would on a laptop, not as a test: in its own mount and host-name namespaces
// (unshare, root) the NAS folder is mounted at /mnt/nas/ann and the laptop is called ann-laptop, so
// no temporary path or build machine's name shows in the pictures, and nothing changes outside.
import { test, expect, type Page } from '@playwright/test';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseStorageUrl } from '../../src-main/core/storage-url';
import { localEndpoint, storageEndpoint } from '../../src-main/core/sync/endpoint';
import { runSync } from '../../src-main/core/sync/engine';
import { createSandbox, repoRoot, startHeadlessAgent } from '../../test/fixtures/headless-agent';
import { goTo, openWindow, sentence } from '../../test/e2e/window';

const docs = path.join(repoRoot, 'docs');
async function shot(page: Page, name: string) {
  await page.mouse.move(0, 0); // no hover highlight left where the last click was
  await expect(page.locator('body')).not.toContainText(os.tmpdir()); // no test sandbox in a picture
  await page.screenshot({ path: path.join(docs, name) });
}

test('README screenshots', async ({ page }) => {
  fs.mkdirSync(docs, { recursive: true });
  const sb = createSandbox();
  sb.writeOsRelease({ PRETTY_NAME: 'Tabula Workstation 2026.11.3', NAME: 'Tabula Workstation', IMAGE_ID: 'tabula-workstation', IMAGE_VERSION: '2026.11.3' });
  // The NAS's folder as laptop B (in this process) sees it; the agent sees it mounted at /mnt/nas/ann.
  const nas = path.join(sb.dir, 'nas-export');
  fs.mkdirSync(nas, { recursive: true });
  const mounted = '/mnt/nas/ann';
  const laptop = [
    'unshare', '--mount', '--uts', '--propagation', 'private', 'sh', '-c',
    'hostname ann-laptop && mount -t tmpfs tmpfs /mnt && mkdir -p /mnt/nas/ann && mount --bind "$TABULA_NAS" /mnt/nas/ann && exec "$@"',
    'sh',
  ];
  sb.env.TABULA_NAS = nas;
  for (const f of ['Documents/thesis.odt', 'Documents/budget.ods', 'Pictures/holiday.jpg']) {
    fs.mkdirSync(path.dirname(path.join(sb.home, f)), { recursive: true });
    fs.writeFileSync(path.join(sb.home, f), `${f}\n`.repeat(200));
  }
  sb.writeUserConfig({ storage: { url: mounted }, backup: { watchHome: false } });
  fs.mkdirSync(path.join(sb.env.TABULA_ROOT!, 'etc'), { recursive: true });
  fs.writeFileSync(path.join(sb.env.TABULA_ROOT!, 'etc/machine-id'), '5c0ffee5c0ffee5c0ffee5c0ffee5c0f\n');
  const agent = await startHeadlessAgent(sb, [], { prefix: laptop });
  try {
    await page.setViewportSize({ width: 400, height: 600 });
    await openWindow(page, agent);
    await page.getByRole('button', { name: 'Back up now' }).first().click();
    await expect(sentence(page)).toHaveText(/^Safe on nas\/ann/);
    // What the pictures are for: a person's laptop, not the machine that took them.
    await expect(page.locator('body')).toContainText('/mnt/nas/ann');
    await expect(page.locator('body')).toContainText('ann-laptop');
    await shot(page, 'screenshot.png');
    await page.emulateMedia({ colorScheme: 'dark' });
    await shot(page, 'screenshot-dark.png');
    await page.emulateMedia({ colorScheme: 'light' });

    // The same file edited on another laptop and here: the decision the window asks for.
    const other = path.join(sb.dir, 'laptop-b');
    fs.mkdirSync(other);
    const b = { home: localEndpoint(other), storage: storageEndpoint(parseStorageUrl(nas), [], 5), excludes: [], stateDir: path.join(sb.dir, 'b-state'), host: 'laptop-b' };
    await runSync(b);
    fs.writeFileSync(path.join(other, 'Documents/budget.ods'), 'budget, edited on laptop B\n');
    await runSync(b);
    fs.writeFileSync(path.join(sb.home, 'Documents/budget.ods'), 'budget, edited here with the new figures\n');
    await page.getByRole('button', { name: 'Back up now' }).first().click();
    await expect(sentence(page)).toHaveText('1 file needs your decision');
    await shot(page, 'sync-conflict.png');

    await page.setViewportSize({ width: 1280, height: 800 });
    await goTo(page, 'Helpdesk');
    await expect(page.getByTestId('machine-identity')).toBeVisible();
    await shot(page, 'helpdesk-wide.png');
  } finally {
    await agent.stop();
    await sb.dispose();
  }
});

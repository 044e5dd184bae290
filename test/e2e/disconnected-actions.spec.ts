// While the window cannot reach the agent ("Not connected — retrying"), its actions cannot do
// anything: the Backup card's buttons (and the pages' other actions) are disabled and say why, and
// they come back by themselves when the agent does. Real agent, real storage folder, real Chromium.
import { test as base, expect, type Page } from '@playwright/test';
import fs from 'node:fs';
import path from 'node:path';
import { createSandbox, startHeadlessAgent, type AgentSandbox } from '../fixtures/headless-agent';
import { openWindow, sentence } from './window';

const test = base.extend<{ sandbox: AgentSandbox }>({
  // eslint-disable-next-line no-empty-pattern
  sandbox: async ({}, use) => {
    const sandbox = createSandbox();
    await use(sandbox);
    await sandbox.dispose();
  },
});

const reason = /Not connected to the Tabula agent/;
const backupCard = (page: Page) => page.getByRole('region', { name: 'Backup', exact: true });

test('the agent dies: the Backup card’s buttons are disabled with the reason, and enabled again when it is back', async ({ page, sandbox }) => {
  const nas = path.join(sandbox.dir, 'nas', 'ann');
  fs.mkdirSync(nas, { recursive: true });
  sandbox.writeUserConfig({ storage: { url: nas }, backup: { watchHome: false, retryMinSeconds: 60 } });
  const agent = await startHeadlessAgent(sandbox);
  await openWindow(page, agent);
  const backUpNow = backupCard(page).getByRole('button', { name: 'Back up now' });
  const pause = backupCard(page).getByRole('button', { name: 'Pause backups' });
  const showVersions = page.getByRole('button', { name: 'Show versions' });
  await expect(backUpNow).toBeEnabled();
  await expect(backUpNow).not.toHaveAttribute('title');
  await expect(page.getByTestId('not-connected')).toHaveCount(0);

  agent.kill();
  await expect(sentence(page)).toHaveText('Not connected — retrying', { timeout: 15_000 });
  for (const button of [backUpNow, pause]) {
    await expect(button).toBeDisabled();
    await expect(button).toHaveAccessibleDescription(reason);
    await expect(button).toHaveAttribute('title', reason);
  }
  // The rest of the page's actions need the agent too.
  await expect(showVersions).toBeDisabled();
  await expect(page.getByTestId('not-connected')).toHaveText(reason);

  // As a person (or systemd) starts it again: the open window reconnects and the buttons work.
  const again = await startHeadlessAgent(sandbox);
  await expect(sentence(page)).toHaveText('Not backed up to nas/ann yet', { timeout: 20_000 });
  for (const button of [backUpNow, pause, showVersions]) await expect(button).toBeEnabled();
  await expect(backUpNow).not.toHaveAttribute('title');
  await expect(page.getByTestId('not-connected')).toHaveCount(0);
  await backUpNow.click();
  await expect(sentence(page)).toHaveText('Safe on nas/ann — backed up just now', { timeout: 20_000 });
  expect(fs.readFileSync(path.join(nas, 'Documents/notes.txt'), 'utf8')).toBe('Remember the milk.\n');
  await again.stop();
});

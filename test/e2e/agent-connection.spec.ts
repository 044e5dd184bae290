// The window when the agent goes away (a crash, `systemctl --user stop`): it says "Not connected"
// and why, instead of showing stale state as if all were well.
import { test, expect } from '@playwright/test';
import fs from 'node:fs';
import path from 'node:path';
import { createSandbox, startHeadlessAgent } from '../fixtures/headless-agent';

test('the window says "Not connected" when the agent stops', async ({ page }) => {
  const sandbox = createSandbox();
  try {
    fs.mkdirSync(path.join(sandbox.dir, 'storage'));
    sandbox.writeUserConfig({ storage: { url: path.join(sandbox.dir, 'storage') } });
    const agent = await startHeadlessAgent(sandbox);
    await page.goto(agent.openUrl);
    await expect(page.getByRole('status')).toHaveText('Connected');

    agent.kill();
    await expect(page.getByRole('status')).toHaveText('Not connected');
    await expect(page.getByRole('alert').first()).toContainText('Not connected to the Tabula agent');
  } finally {
    await sandbox.dispose();
  }
});

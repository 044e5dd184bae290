// Browser tests of the real window: `tabula --headless` serves it, Debian's Chromium shows it.
// `npx playwright test` works from a fresh checkout: the global setup builds once.
// Never `playwright install`: the browser is the system one.
import { defineConfig } from '@playwright/test';

export default defineConfig({
  testDir: 'test/e2e',
  globalSetup: './test/e2e/global-setup.ts',
  workers: 1,
  fullyParallel: false,
  forbidOnly: !!process.env.CI,
  timeout: 60_000,
  expect: { timeout: 10_000 },
  // The default; a runner adds its own with --reporter (e.g. json with PLAYWRIGHT_JSON_OUTPUT_NAME).
  reporter: [['list']],
  use: {
    headless: true,
    viewport: { width: 640, height: 560 },
    trace: 'retain-on-failure',
    launchOptions: {
      executablePath: '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    },
  },
});

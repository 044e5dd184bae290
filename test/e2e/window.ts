// Shared steps for the window specs: open it, read the safety line, go to a page, and "look" at a
// state the way the issue asks: at tray-popup size (400×600) and wide (1280×800), light and dark,
// with the safety line visible without scrolling, zero serious/critical axe violations, and a
// screenshot per look in test-results/looks/.
import AxeBuilder from '@axe-core/playwright';
import { expect, type Page } from '@playwright/test';
import fs from 'node:fs';
import path from 'node:path';
import type { RunningAgent } from '../fixtures/headless-agent';
import { repoRoot } from '../fixtures/headless-agent';

export const sizes = [
  { width: 400, height: 600 },
  { width: 1280, height: 800 },
] as const;
export const themes = ['light', 'dark'] as const;

export const safety = (page: Page) => page.getByTestId('safety');
export const sentence = (page: Page) => page.getByTestId('safety-sentence');

export async function openWindow(page: Page, agent: RunningAgent) {
  await page.goto(agent.openUrl);
  await expect(sentence(page)).toBeVisible({ timeout: 15_000 });
}

export async function goTo(page: Page, name: 'Home' | 'System' | 'Preferences' | 'Helpdesk') {
  await page.getByRole('tab', { name, exact: true }).click();
  await expect(page.getByRole('tab', { name, exact: true })).toHaveAttribute('aria-selected', 'true');
}

/** Serious or critical accessibility violations on the page as it is now (axe-core). */
export async function axeViolations(page: Page): Promise<string[]> {
  const result = await new AxeBuilder({ page }).analyze();
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join(', ')}`);
}

/**
 * Looks at the current state at both sizes and in both themes: the safety line shows `expected`
 * with the given tone, fully inside the first screen; axe finds nothing serious; a screenshot is kept.
 */
export async function lookAt(page: Page, name: string, expected: { sentence: string | RegExp; tone: 'ok' | 'info' | 'warn' | 'danger' }) {
  const dir = path.join(repoRoot, 'test-results', 'looks');
  fs.mkdirSync(dir, { recursive: true });
  for (const size of sizes) {
    for (const theme of themes) {
      await page.setViewportSize(size);
      await page.emulateMedia({ colorScheme: theme });
      await expect(sentence(page)).toHaveText(expected.sentence);
      await expect(safety(page)).toHaveAttribute('data-tone', expected.tone);
      // A screen reader hears it change: the sentence is inside a polite live region.
      await expect(page.getByRole('status').filter({ has: sentence(page) })).toHaveAttribute('aria-live', 'polite');
      // As the window opens: at the top (a click further down may have scrolled the page).
      await page.evaluate(() => window.scrollTo(0, 0));
      const box = (await safety(page).boundingBox())!;
      expect(box.y, 'the safety line starts on screen').toBeGreaterThanOrEqual(0);
      expect(box.y + box.height, `the safety line is on the first screen at ${size.width}×${size.height}`).toBeLessThanOrEqual(size.height);
      expect(box.y, 'nothing pushes it down').toBeLessThan(120);
      expect(await axeViolations(page), `axe at ${size.width}×${size.height} ${theme}`).toEqual([]);
      await page.screenshot({ path: path.join(dir, `${name}-${size.width}x${size.height}-${theme}.png`) });
    }
  }
  await page.setViewportSize(sizes[0]);
  await page.emulateMedia({ colorScheme: 'light' });
}

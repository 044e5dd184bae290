// The four pages as a new user and a helpdesk technician see them, on a machine like the ones that
// reported issue 8 (Debian's os-release, no image source, no display, nothing saved yet): each defect
// they saw, and axe on every page in both themes.
import { test as base, expect } from '@playwright/test';
import fs from 'node:fs';
import path from 'node:path';
import { createSandbox, startHeadlessAgent, type AgentSandbox, type RunningAgent } from '../fixtures/headless-agent';
import { axeViolations, goTo, openWindow, sentence } from './window';

const test = base.extend<{ sandbox: AgentSandbox; agent: RunningAgent; opened: string }>({
  // eslint-disable-next-line no-empty-pattern
  sandbox: async ({}, use) => {
    const sandbox = createSandbox();
    sandbox.writeOsRelease({ PRETTY_NAME: 'Debian GNU/Linux 12 (bookworm)', NAME: 'Debian GNU/Linux', VERSION_ID: '12', VERSION: '12 (bookworm)', ID: 'debian' });
    fs.mkdirSync(path.join(sandbox.dir, 'nas'));
    sandbox.writeUserConfig({ storage: { url: path.join(sandbox.dir, 'nas') }, backup: { watchHome: false } });
    fs.mkdirSync(path.join(sandbox.env.TABULA_ROOT!, 'etc'), { recursive: true });
    fs.writeFileSync(path.join(sandbox.env.TABULA_ROOT!, 'etc/machine-id'), '0123456789abcdef0123456789abcdef\n');
    await use(sandbox);
    await sandbox.dispose();
  },
  // No desktop session here: a stand-in xdg-open on PATH records what the agent asked it to open.
  opened: async ({ sandbox }, use) => {
    const bin = path.join(sandbox.dir, 'fake-desktop-bin');
    const opened = path.join(sandbox.dir, 'opened.txt');
    fs.mkdirSync(bin);
    fs.writeFileSync(path.join(bin, 'xdg-open'), `#!/bin/sh\nprintf '%s\\n' "$1" >> '${opened}'\n`, { mode: 0o755 });
    sandbox.env.PATH = `${bin}:${sandbox.env.PATH}`;
    // No display either: the Displays tab must say so in words.
    delete sandbox.env.DISPLAY;
    delete sandbox.env.WAYLAND_DISPLAY;
    delete sandbox.env.DBUS_SESSION_BUS_ADDRESS;
    await use(opened);
  },
  agent: async ({ sandbox, opened: _opened }, use) => {
    const agent = await startHeadlessAgent(sandbox);
    await use(agent);
    await agent.stop();
  },
});

test('the header names the image once: "Debian GNU/Linux 12 (bookworm)", not "… (bookworm) 12"', async ({ page, agent }) => {
  await openWindow(page, agent);
  await expect(page.getByTestId('image-version')).toHaveText(/^Debian GNU\/Linux 12 \(bookworm\) · /);
});

test('Helpdesk with no image source: the reason, no "reset anyway" box, the image from os-release, the whole machine id, files counted right', async ({ page, sandbox, agent }) => {
  fs.writeFileSync(path.join(sandbox.home, 'Documents/thesis.odt'), 'chapter 1\n');
  await openWindow(page, agent);
  await goTo(page, 'Helpdesk');
  const facts = page.getByTestId('machine-identity');
  await expect(facts).toContainText('0123456789abcdef0123456789abcdef');
  const id = page.getByText('0123456789abcdef0123456789abcdef');
  for (const width of [400, 1280]) {
    await page.setViewportSize({ width, height: 700 });
    expect(await id.evaluate((el) => el.scrollWidth <= el.clientWidth + 1 && el.getBoundingClientRect().right <= window.innerWidth), `machine id whole at ${width}`).toBe(true);
  }
  await expect(page.getByTestId('helpdesk-image')).toHaveText('Debian GNU/Linux 12 (bookworm)');
  await expect(page.getByTestId('unsynced-count')).toHaveText('2 files');
  const refused = page.getByTestId('reimage-refused');
  await expect(refused).toContainText('No image source is configured on this machine');
  await expect(page.getByRole('checkbox')).toHaveCount(0);
  await expect(page.getByText('These would be lost')).toHaveCount(0);
  await expect(page.getByText(/version current/)).toHaveCount(0);
  await expect(page.getByRole('button', { name: 'Reset this computer…' })).toBeDisabled();
  // The danger button's label is readable (it was the colour of its own background), in both themes.
  for (const scheme of ['light', 'dark'] as const) {
    await page.emulateMedia({ colorScheme: scheme });
    const { fg, bg } = await page.getByRole('button', { name: 'Reset this computer…' }).evaluate((el) => ({ fg: getComputedStyle(el).color, bg: getComputedStyle(el).backgroundColor }));
    expect(fg, scheme).not.toBe(bg);
    expect(fg).toBe('rgb(255, 255, 255)');
  }
});

test('Diagnostics: saved with the config layers and history, copied for the ticket, its folder opened', async ({ page, context, sandbox, agent, opened }) => {
  await context.grantPermissions(['clipboard-read', 'clipboard-write']);
  await openWindow(page, agent);
  await page.getByRole('button', { name: 'Back up now' }).first().click();
  await expect(sentence(page)).toHaveText(/^Safe on/);
  await goTo(page, 'Helpdesk');
  await page.getByRole('button', { name: 'Save diagnostics' }).click();
  const feedback = page.getByTestId('feedback-diagnostics');
  await expect(feedback).toContainText('Diagnostics saved to');
  const file = (await feedback.textContent())!.replace(/^Diagnostics saved to /, '').trim();
  const bundle = JSON.parse(fs.readFileSync(file, 'utf8'));
  expect(Object.keys(bundle)).toEqual(expect.arrayContaining(['config', 'prefs', 'recentEvents', 'backupHistory', 'status', 'identity']));
  expect(bundle.backupHistory).toHaveLength(1);

  await page.getByRole('button', { name: 'Copy diagnostics' }).click();
  await expect(feedback).toHaveText('Diagnostics copied: paste them into the ticket.');
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  expect(JSON.parse(copied).identity.machineId).toBe('0123456789abcdef0123456789abcdef');

  await page.getByRole('button', { name: 'Open diagnostics folder' }).click();
  await expect(feedback).toContainText('in the file manager');
  await expect.poll(() => (fs.existsSync(opened) ? fs.readFileSync(opened, 'utf8').trim() : '')).toBe(path.join(sandbox.env.XDG_STATE_HOME!, 'tabula', 'diagnostics'));
});

test('Preferences with nothing saved and no display: "Apply now" says so in the tab; Displays says there is no display', async ({ page, agent }) => {
  await openWindow(page, agent);
  await goTo(page, 'Preferences');
  await page.getByRole('tab', { name: 'Displays' }).click();
  const panel = page.getByRole('tabpanel', { name: 'Displays' });
  await expect(panel).not.toContainText('Too small');
  await expect(panel).not.toContainText('expected array');
  await expect(panel.getByRole('button', { name: 'Save layout for these monitors' })).toBeDisabled();
  await expect(panel.getByText(/display/i).first()).toBeVisible();
  await panel.getByRole('button', { name: 'Apply now' }).click();
  await expect(page.getByTestId('feedback-displays')).not.toBeEmpty();
  await page.getByRole('tab', { name: 'Printers' }).click();
  const printers = page.getByRole('tabpanel', { name: 'Printers' });
  await printers.getByRole('button', { name: 'Apply now' }).click();
  await expect(page.getByTestId('feedback-printers')).toHaveText(/Nothing to apply: no printer is saved yet|Not applied: /);
});

test('axe: no serious or critical violation on any page or tab, light and dark', async ({ page, agent }) => {
  test.setTimeout(150_000);
  await openWindow(page, agent);
  const visit = async (): Promise<string[]> => {
    const found: string[] = [];
    for (const [pageName, tabs] of [['Home', []], ['System', []], ['Preferences', ['Network', 'Printers', 'Displays']], ['Helpdesk', []]] as const) {
      await goTo(page, pageName);
      if (pageName === 'Helpdesk') await expect(page.getByTestId('machine-identity')).toBeVisible();
      for (const tab of tabs.length ? tabs : [null]) {
        if (tab) await page.getByRole('tab', { name: tab }).click();
        for (const v of await axeViolations(page)) found.push(`${pageName}${tab ? `/${tab}` : ''}: ${v}`);
      }
    }
    return found;
  };
  for (const scheme of ['light', 'dark'] as const) {
    await page.emulateMedia({ colorScheme: scheme });
    expect(await visit(), scheme).toEqual([]);
  }
});

test('buttons have unique accessible names on every page', async ({ page, agent }) => {
  await openWindow(page, agent);
  for (const name of ['Home', 'System', 'Preferences', 'Helpdesk'] as const) {
    await goTo(page, name);
    const names = await page.getByRole('button').evaluateAll((els) => els.filter((e) => (e as HTMLElement).offsetParent !== null).map((e) => e.getAttribute('aria-label') ?? e.textContent?.trim() ?? ''));
    const dupes = names.filter((n, i) => names.indexOf(n) !== i);
    // "Back up now" is both the top line's one action and the backup panel's button: the same action.
    expect(dupes.filter((n) => n !== 'Back up now'), name).toEqual([]);
  }
});

test('focus rings and input borders stand out at least 3:1 from what is behind them, light and dark', async ({ page, agent }) => {
  await openWindow(page, agent);
  const input = page.getByLabel('Path in your home');
  for (const scheme of ['light', 'dark'] as const) {
    await page.emulateMedia({ colorScheme: scheme });
    const border = await input.evaluate((el) => {
      const card = el.closest('.card')!;
      return { line: getComputedStyle(el).borderTopColor, behind: getComputedStyle(card).backgroundColor };
    });
    expect(contrast(border.line, border.behind), `input border, ${scheme}`).toBeGreaterThanOrEqual(3);
    await input.focus();
    await page.keyboard.press('Tab'); // keyboard focus: :focus-visible on the next button
    const ring = await page.evaluate(() => {
      const el = document.activeElement as HTMLElement;
      return { ring: getComputedStyle(el).outlineColor, style: getComputedStyle(el).outlineStyle, behind: getComputedStyle(el.closest('.card')!).backgroundColor };
    });
    expect(ring.style, scheme).toBe('solid');
    expect(contrast(ring.ring, ring.behind), `focus ring, ${scheme}`).toBeGreaterThanOrEqual(3);
  }
});

function contrast(a: string, b: string): number {
  const lum = (css: string) => {
    const [r, g, bl] = (css.match(/[\d.]+/g) ?? []).slice(0, 3).map((v) => {
      const c = Number(v) / 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    }) as [number, number, number];
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl;
  };
  const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x) as [number, number];
  return (hi + 0.05) / (lo + 0.05);
}

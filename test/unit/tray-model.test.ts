import { describe, expect, it } from 'vitest';
import { imageLabel } from '../../src-main/common/image-label';
import { disconnectedTrayModel, trayIcons, trayModel } from '../../src-main/common/tray-model';
import { agentStatus as status, stagedImage } from '../support/agent-status';

const now = Date.parse('2026-11-22T10:00:00Z');
const labels = (m: ReturnType<typeof trayModel>) => m.menu.map((i) => i.label);
const conflict = { path: 'a.txt', conflictPath: 'a (conflict).txt', kept: 'local' as const, at: '' };

describe('tray model', () => {
  it('backed up: the check icon, the safety sentence first, Back up now', () => {
    const m = trayModel(status({}), now);
    expect(m.icon).toBe('safe');
    expect(m.tooltip).toBe('Tabula — Safe on nas.example — backed up 2 min ago\nTabula Workstation 2026.11.3');
    expect(labels(m)).toEqual(['Safe on nas.example — backed up 2 min ago', 'Back up now', 'Image 2026.11.3', 'Open Tabula', 'Quit']);
  });

  it('a Debian laptop: the tooltip names "Debian GNU/Linux 12 (bookworm)", never "… (bookworm) 12"', () => {
    const debian = { ...status({}), image: { name: 'Debian GNU/Linux 12 (bookworm)', id: 'debian', version: '12', source: '/etc/os-release', problem: null } };
    expect(trayModel(debian, now).tooltip).toBe('Tabula — Safe on nas.example — backed up 2 min ago\nDebian GNU/Linux 12 (bookworm)');
  });

  it('the image label keeps a version the name does not say as a word', () => {
    expect(imageLabel({ name: 'Debian GNU/Linux 12 (bookworm)', version: '12' })).toBe('Debian GNU/Linux 12 (bookworm)');
    expect(imageLabel({ name: 'Tabula Workstation', version: '2026.11.3' })).toBe('Tabula Workstation 2026.11.3');
    expect(imageLabel({ name: 'Tabula 2026.12', version: '1' })).toBe('Tabula 2026.12 1');
    expect(imageLabel({ name: 'Arch Linux', version: 'unknown' })).toBe('Arch Linux');
  });

  it('an update server serving stale data is named in the menu, not shown as an up-to-date image', () => {
    const stale = { ...status({}).imageUpdate, state: 'stale' as const, reason: 'Update server data is out of date since 2026-11-20 10:00.' };
    expect(labels(trayModel(status({}, [], stale), now))).toContain('Image 2026.11.3 — update server data out of date');
    expect(labels(trayModel(status({}), now))).toContain('Image 2026.11.3');
  });

  it('syncing: Stop instead of Back up now, and the percentage', () => {
    const m = trayModel(status({ state: 'running', progress: { phase: 'pushing', percent: 40, etaSeconds: 5, bytesDone: 1, bytesTotal: 2, filesDone: 1, filesTotal: 3, currentFile: null } }), now);
    expect(m.icon).toBe('syncing');
    expect(labels(m)).toEqual(expect.arrayContaining(['Backing up to nas.example… 40%', 'Stop backup']));
    expect(labels(m)).not.toContain('Back up now');
  });

  it('queued/offline, paused (with Resume), decision, error, stale, update: each has its own icon', () => {
    const cases = {
      queued: status({ state: 'offline', reason: 'Waiting for storage — 12 changes queued. The storage nas cannot be reached right now (connection refused).', queuedChanges: 12 }),
      paused: status({ state: 'paused', paused: true }),
      decision: status({ state: 'attention', conflicts: [conflict] }),
      error: status({ state: 'failed', reason: 'The storage is full.' }),
      stale: status({ lastSuccessAt: '2026-11-19T10:00:00Z' }),
      update: status({}, [], stagedImage),
      'local-only': status({ localOnly: true, storage: '/home/ann/.local/share/tabula/storage' }),
      pending: status({ queuedChanges: 3 }),
    } as const;
    const icons = Object.entries(cases).map(([want, s]) => [want, trayModel(s, now).icon]);
    expect(icons).toEqual(Object.keys(cases).map((k) => [k, k]));
    expect(new Set(icons.map(([, i]) => i)).size).toBe(Object.keys(cases).length);
    const paused = trayModel(cases.paused, now);
    expect(paused.menu.find((i) => i.id === 'resume')).toEqual({ id: 'resume', label: 'Resume backup', enabled: true });
    expect(labels(paused)).not.toContain('Back up now');
    expect(labels(trayModel(cases.decision, now))).toContain('Review…');
  });

  it('menu items are short labels, never a whole error sentence', () => {
    const long = 'The storage ann@nas.example:/srv/homes/ann cannot be reached right now (connection refused). Tabula tries again by itself.';
    for (const s of [status({ state: 'failed', reason: long }), status({ state: 'offline', reason: long, queuedChanges: 2 })]) {
      for (const label of labels(trayModel(s, now))) {
        expect(label).not.toContain(long);
        expect(label.length).toBeLessThanOrEqual(60);
      }
    }
  });

  it('a staged version: Restart to update to V in the menu', () => {
    const m = trayModel(status({}, [], stagedImage), now);
    expect(m.menu.find((i) => i.id === 'restart-to-update')).toEqual({ id: 'restart-to-update', label: 'Restart to update to 2026.12.1', enabled: true });
    expect(labels(trayModel(status({}), now))).not.toContain('Restart to update to 2026.12.1');
  });

  it('every icon the model can show has an SVG and PNGs', async () => {
    const fs = await import('node:fs');
    for (const icon of trayIcons) {
      expect(fs.existsSync(`assets/icons/tray-${icon}.svg`), icon).toBe(true);
      for (const size of [16, 22, 24, 32, 48]) expect(fs.existsSync(`assets/icons/png/tray-${icon}-${size}.png`), `${icon}-${size}`).toBe(true);
    }
  });

  it('without its agent the tray says Not connected with the reason, and offers only the window', () => {
    const m = disconnectedTrayModel('Not connected to the Tabula agent: nothing answers at /run/user/1000/tabula/agent.sock (connect ECONNREFUSED).');
    expect(m.icon).toBe('error');
    expect(m.tooltip).toBe('Tabula — Not connected — retrying\nNot connected to the Tabula agent: nothing answers at /run/user/1000/tabula/agent.sock (connect ECONNREFUSED).');
    expect(m.menu.filter((i) => i.enabled).map((i) => i.id)).toEqual(['open', 'quit']);
    expect(m.menu[0]).toEqual({ id: 'backup-state', label: 'Not connected — retrying', enabled: false });
  });
});

import { describe, expect, it } from 'vitest';
import type { AgentStatus, BackupStatus } from '../../src-main/common/contract';
import type { ImageUpdateStatus } from '../../src-main/common/contract/image';
import { trayModel } from '../../src-main/common/tray-model';

const now = Date.parse('2026-11-22T10:00:00Z');
const idleImage: ImageUpdateStatus = {
  backend: 'rsync-tree', channel: 'stable', state: 'idle', reason: 'Up to date: version 2026.11.3.', since: '', booted: { version: '2026.11.3', checksum: null },
  staged: null, available: null, rollback: null, lastCheckAt: null, nextCheckAt: null, progress: null, lastPullBytes: null, restartRequired: false, reimagePending: false, lastError: null, policyProblem: null,
};
function status(backup: Partial<BackupStatus>, problems: AgentStatus['problems'] = [], imageUpdate: ImageUpdateStatus = idleImage): AgentStatus {
  return {
    hostname: 'lap-1',
    agentVersion: '0.1.0',
    image: { name: 'Tabula Workstation', id: 'tabula-ws', version: '2026.11.3', source: '/etc/os-release', problem: null },
    backup: {
      state: 'idle', reason: 'All backed up.', since: '', lastSuccessAt: '2026-11-22T09:58:00Z', lastRun: null, progress: null, storage: '/mnt/nas',
      paused: false, queuedChanges: 0, nextAttemptAt: null, conflicts: [], wouldDelete: [], excludes: [], bandwidthLimitKBps: 0, ...backup,
    },
    imageUpdate,
    problems,
  };
}
const labels = (m: ReturnType<typeof trayModel>) => m.menu.map((i) => i.label);

describe('tray model', () => {
  it('shows the image and how long ago the home was backed up', () => {
    const m = trayModel(status({}), now);
    expect(m.icon).toBe('idle');
    expect(m.tooltip).toBe('Tabula — Tabula Workstation 2026.11.3\nAll backed up 2 min ago');
    expect(labels(m)).toContain('Back up now');
  });

  it('offers Stop while syncing and shows the percentage', () => {
    const m = trayModel(status({ state: 'running', progress: { phase: 'pushing', percent: 40, etaSeconds: 5, bytesDone: 1, bytesTotal: 2, filesDone: 1, filesTotal: 3, currentFile: null } }), now);
    expect(m.icon).toBe('syncing');
    expect(labels(m)).toEqual(expect.arrayContaining(['Backing up… 40%', 'Stop backup']));
    expect(labels(m)).not.toContain('Back up now');
  });

  it('distinguishes offline, failed and needs-attention states', () => {
    const offline = trayModel(status({ state: 'offline', reason: 'unreachable', queuedChanges: 12 }), now);
    expect(offline.icon).toBe('offline');
    expect(offline.tooltip).toContain('Offline — 12 changes waiting');
    const conflicts = trayModel(status({ state: 'attention', conflicts: [{ path: 'a', conflictPath: 'b', kept: 'local', at: '' }] }), now);
    expect(conflicts).toMatchObject({ icon: 'attention', tooltip: expect.stringContaining('1 conflict to settle') });
    const paused = trayModel(status({ state: 'paused', paused: true }), now);
    expect(paused.menu.find((i) => i.id === 'backup-now')).toMatchObject({ enabled: false });
    const failed = trayModel(status({ state: 'failed', reason: 'The storage is full.' }), now);
    expect(failed.icon).toBe('error');
    expect(failed.tooltip).toContain('Backup failed: The storage is full.');
    expect(trayModel(status({ state: 'never', lastSuccessAt: null }), now).icon).toBe('attention');
    const withProblem = trayModel(status({}, [{ file: '/etc/tabula/config.json', message: 'bad' }]), now);
    expect(withProblem.icon).toBe('attention');
    expect(withProblem.tooltip).toContain('1 settings problem');
  });

  it('asks for a restart with the attention icon when a version is staged', () => {
    const staged = { ...idleImage, state: 'staged' as const, staged: { version: '2026.12.1', checksum: null }, restartRequired: true, reason: 'Version 2026.12.1 is ready: restart to update.' };
    const m = trayModel(status({}, [], staged), now);
    expect(m.icon).toBe('attention');
    expect(m.menu.find((i) => i.id === 'restart-to-update')).toEqual({ id: 'restart-to-update', label: 'Restart to update (2026.12.1)', enabled: true });
    expect(m.tooltip).toContain('Version 2026.12.1 is ready: restart to update.');
    expect(labels(trayModel(status({}), now))).not.toContain('Restart to update (2026.12.1)');
  });
});

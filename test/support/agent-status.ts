// A complete AgentStatus for pure-function tests (safety line, tray model): an idle, backed-up laptop
// on network storage, with whatever the test changes on top.
import type { AgentStatus, BackupStatus } from '../../src-main/common/contract';
import type { ImageUpdateStatus } from '../../src-main/common/contract/image';

export const idleImage: ImageUpdateStatus = {
  backend: 'rsync-tree', channel: 'stable', state: 'idle', reason: 'Up to date: version 2026.11.3.', since: '', booted: { version: '2026.11.3', checksum: null },
  staged: null, available: null, rollback: null, lastCheckAt: null, nextCheckAt: null, progress: null, lastPullBytes: null, restartRequired: false, reimagePending: false, lastError: null, policyProblem: null, serverData: null,
};

export const stagedImage: ImageUpdateStatus = {
  ...idleImage, state: 'staged', staged: { version: '2026.12.1', checksum: null }, restartRequired: true, reason: 'Version 2026.12.1 is ready: restart to update.',
};

export function agentStatus(backup: Partial<BackupStatus>, problems: AgentStatus['problems'] = [], imageUpdate: ImageUpdateStatus = idleImage): AgentStatus {
  return {
    hostname: 'lap-1',
    agentVersion: '0.1.0',
    image: { name: 'Tabula Workstation', id: 'tabula-ws', version: '2026.11.3', source: '/etc/os-release', problem: null },
    backup: {
      state: 'idle', reason: 'All synced (nothing had changed).', since: '', lastSuccessAt: '2026-11-22T09:58:00Z', lastRun: null, progress: null,
      storage: 'ssh://ann@nas.example:22/srv/homes/ann', localOnly: false,
      paused: false, queuedChanges: 0, nextAttemptAt: null, conflicts: [], wouldDelete: [], wouldDeleteCount: 0, excludes: [], bandwidthLimitKBps: 0, ...backup,
    },
    imageUpdate,
    problems,
    lastEventId: 0,
  };
}

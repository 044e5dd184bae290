// The tray is a pure function of the agent state: computed and tested here, applied by shell/tray.ts.
import type { AgentStatus } from './contract';

export type TrayIcon = 'idle' | 'syncing' | 'offline' | 'attention' | 'error';
export type TrayAction = 'open' | 'backup-now' | 'cancel-backup' | 'restart-to-update' | 'quit';

export interface TrayMenuItem {
  id: TrayAction | 'image' | 'backup-state';
  label: string;
  enabled: boolean;
}

export interface TrayModel {
  icon: TrayIcon;
  tooltip: string;
  menu: TrayMenuItem[];
}

function backupLine(s: AgentStatus, now: number): string {
  const b = s.backup;
  if (b.state === 'running') return b.progress ? `Backing up… ${b.progress.percent}%` : 'Backing up…';
  if (b.state === 'idle' && b.lastSuccessAt) {
    const min = Math.max(0, Math.round((now - Date.parse(b.lastSuccessAt)) / 60000));
    return min < 1 ? 'All backed up just now' : min < 120 ? `All backed up ${min} min ago` : `All backed up ${Math.round(min / 60)} h ago`;
  }
  if (b.state === 'never') return 'Not backed up yet';
  if (b.state === 'offline') return b.queuedChanges === null ? 'Offline — changes waiting' : `Offline — ${b.queuedChanges} ${b.queuedChanges === 1 ? 'change' : 'changes'} waiting`;
  if (b.state === 'paused') return 'Sync paused';
  if (b.state === 'deferred') return `Sync waiting: ${b.reason}`;
  if (b.state === 'attention') return b.conflicts.length ? `${b.conflicts.length} ${b.conflicts.length === 1 ? 'conflict' : 'conflicts'} to settle` : `Sync needs you: ${b.reason}`;
  return `Backup failed: ${b.reason}`;
}

export function trayModel(s: AgentStatus, now: number = Date.now()): TrayModel {
  const b = s.backup;
  const icon: TrayIcon =
    b.state === 'running'
      ? 'syncing'
      : b.state === 'offline'
        ? 'offline'
        : b.state === 'failed'
          ? 'error'
          : b.state === 'idle' && !s.problems.length && !s.image.problem && !s.imageUpdate.restartRequired
            ? 'idle'
            : 'attention';
  const image = `${s.image.name} ${s.image.version}`;
  // A staged image (or reset) only takes effect at a restart: say so where the user looks.
  const u = s.imageUpdate;
  const restart: TrayMenuItem[] = u.restartRequired
    ? [{ id: 'restart-to-update', label: u.reimagePending ? 'Restart to finish the reset' : `Restart to update (${u.staged?.version ?? 'new version'})`, enabled: true }]
    : [];
  const line = backupLine(s, now);
  return {
    icon,
    tooltip: `Tabula — ${image}\n${line}${u.restartRequired ? `\n${u.reason}` : ''}${s.problems.length ? `\n${s.problems.length} settings problem${s.problems.length > 1 ? 's' : ''}` : ''}`,
    menu: [
      { id: 'image', label: `Image: ${image}`, enabled: false },
      ...restart,
      { id: 'backup-state', label: line, enabled: false },
      b.state === 'running'
        ? { id: 'cancel-backup', label: 'Stop backup', enabled: true }
        : { id: 'backup-now', label: 'Back up now', enabled: !b.paused },
      { id: 'open', label: 'Open Tabula', enabled: true },
      { id: 'quit', label: 'Quit', enabled: true },
    ],
  };
}

// The tray is a pure function of the agent state: computed and tested here, applied by shell/tray.ts.
// Its icon and first line come from the same safety line as the window's top line.
import type { AgentStatus } from './contract';
import { imageLabel } from './image-label';
import { safetyLine, type SafetyIcon } from './safety-line';

/** One icon per safety state (assets/icons/tray-<icon>.svg); a tray without its agent shows 'error' (disconnectedTrayModel). */
export type TrayIcon = Exclude<SafetyIcon, 'disconnected'>;
export const trayIcons: readonly TrayIcon[] = ['safe', 'syncing', 'pending', 'queued', 'local-only', 'paused', 'decision', 'update', 'error', 'stale'];
export type TrayAction = 'open' | 'backup-now' | 'cancel-backup' | 'resume' | 'restart-to-update' | 'quit';

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

export function trayModel(s: AgentStatus, now: number = Date.now()): TrayModel {
  const line = safetyLine(s, now);
  const b = s.backup;
  const u = s.imageUpdate;
  const image = imageLabel(s.image);
  // A staged image (or reset) only takes effect at a restart: say so where the user looks.
  const restart: TrayMenuItem[] = u.restartRequired
    ? [{ id: 'restart-to-update', label: u.reimagePending ? 'Restart to finish the reset' : `Restart to update to ${u.staged?.version ?? 'new version'}`, enabled: true }]
    : [];
  const main: TrayMenuItem =
    b.state === 'running'
      ? { id: 'cancel-backup', label: 'Stop backup', enabled: true }
      : b.paused
        ? { id: 'resume', label: 'Resume backup', enabled: true }
        : { id: 'backup-now', label: 'Back up now', enabled: true };
  const decision = line.icon === 'decision' ? [{ id: 'open' as const, label: 'Review…', enabled: true }] : [];
  const problems = s.problems.length ? `\n${s.problems.length} settings problem${s.problems.length > 1 ? 's' : ''}` : '';
  return {
    icon: line.icon === 'disconnected' ? 'error' : line.icon,
    tooltip: `Tabula — ${line.sentence}\n${image}${problems}`,
    menu: [
      { id: 'backup-state', label: line.sentence, enabled: false },
      ...decision,
      main,
      ...restart,
      // A frozen or replayed update server is not "up to date" (issue 12): the menu says so.
      { id: 'image', label: u.state === 'stale' ? `Image ${s.image.version} — update server data out of date` : `Image ${s.image.version}`, enabled: false },
      { id: 'open', label: 'Open Tabula', enabled: true },
      { id: 'quit', label: 'Quit', enabled: true },
    ],
  };
}

/**
 * While the agent (the user's service) is away — stopped, restarting, crashed — the tray says so in
 * the safety line's words and offers only the window; it reconnects by itself.
 */
export function disconnectedTrayModel(reason: string): TrayModel {
  return {
    icon: 'error',
    tooltip: `Tabula — Not connected — retrying\n${reason}`,
    menu: [
      { id: 'backup-state', label: 'Not connected — retrying', enabled: false },
      { id: 'open', label: 'Open Tabula', enabled: true },
      { id: 'quit', label: 'Quit', enabled: true },
    ],
  };
}

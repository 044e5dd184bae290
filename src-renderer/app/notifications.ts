// Desktop notifications from the window (the Notification API): once a day while backups are stale,
// and once for each new decision the backup needs. Remembered in localStorage across reloads. In the
// Electron shell the page has no notification permission; the shell notifies instead.
import type { AgentStatus } from '../../src-main/common/contract';
import { emptyNotifyMemory, nextNotification, type NotifyMemory } from '../../src-main/common/safety-line';

const KEY = 'tabula-notified';

function load(): NotifyMemory {
  try {
    return { ...emptyNotifyMemory, ...(JSON.parse(localStorage.getItem(KEY) ?? '{}') as Partial<NotifyMemory>) };
  } catch {
    return emptyNotifyMemory;
  }
}

export async function notifyIfDue(status: AgentStatus, now = Date.now()): Promise<void> {
  if (typeof Notification === 'undefined') return;
  const { notify, memory } = nextNotification(status, load(), now);
  localStorage.setItem(KEY, JSON.stringify(memory));
  if (!notify) return;
  if (Notification.permission === 'default') await Notification.requestPermission().catch(() => 'denied');
  if (Notification.permission === 'granted') new Notification(notify.title, { body: notify.body, tag: 'tabula-safety' });
}

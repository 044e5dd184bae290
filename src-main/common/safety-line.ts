// "Am I safe?" in one line: a pure function from the agent's state to the tone, icon, sentence and
// one action that the window shows at the top and the tray shows as its icon and first line.
// Order matters: the first thing that can lose work (or needs the person) wins over good news.
import type { AgentStatus } from './contract';

export type SafetyTone = 'ok' | 'info' | 'warn' | 'danger';
export type SafetyIcon =
  | 'safe'
  | 'syncing'
  | 'pending'
  | 'queued'
  | 'local-only'
  | 'paused'
  | 'decision'
  | 'update'
  | 'error'
  | 'stale'
  | 'disconnected';
export type SafetyActionId = 'backup-now' | 'resume' | 'review-conflicts' | 'review-refusal' | 'show-update';

export interface SafetyLine {
  tone: SafetyTone;
  icon: SafetyIcon;
  /** One sentence a person reads in a second. */
  sentence: string;
  /** A second, smaller line: the cause or the when (may be empty). */
  detail: string;
  action: { id: SafetyActionId; label: string } | null;
}

const DAY = 86_400_000;
/** No successful backup for longer than this: amber; longer than STALE_RED: red. */
export const STALE_AMBER_MS = DAY;
export const STALE_RED_MS = 7 * DAY;

const plural = (n: number, one: string, many = one + 's') => `${n} ${n === 1 ? one : many}`;

/** "just now", "3 min ago", "5 h ago", "3 days ago". */
export function timeAgo(iso: string | null, now: number): string {
  if (!iso) return 'never';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 45) return 'just now';
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min ago`;
  const h = Math.round(m / 60);
  if (h < 24) return `${h} h ago`;
  const d = Math.floor(m / 1440);
  return `${plural(d, 'day')} ago`;
}

/** 14:05 (in the person's locale and time zone). */
export function clockTime(iso: string): string {
  return new Date(iso).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
}

/** "10:32" today, "Tue 10:32" within the week, "3 Nov" before. */
export function sinceWhen(iso: string, now: number): string {
  const t = new Date(iso);
  const today = new Date(now);
  if (t.toDateString() === today.toDateString()) return clockTime(iso);
  if (now - t.getTime() < 6 * DAY) return `${t.toLocaleDateString(undefined, { weekday: 'short' })} ${clockTime(iso)}`;
  return t.toLocaleDateString(undefined, { day: 'numeric', month: 'short' });
}

/** The name a person knows the storage by: the server for ssh://, the folder for a mounted path. */
export function storageName(display: string): string {
  const ssh = /^ssh:\/\/(?:[^@/]*@)?(\[[^\]]+\]|[^:/]+)/.exec(display);
  if (ssh) return ssh[1]!;
  // A mounted folder: its last two parts say which one ("nas/ann"), the whole path is in the details.
  const parts = display.split('/').filter(Boolean);
  return parts.length > 2 ? parts.slice(-2).join('/') : display;
}

export function safetyLine(s: AgentStatus, now: number, connected = true): SafetyLine {
  const line = backupLine(s, now, connected);
  // A helpdesk reset waits for this laptop's files: the person should know that first, and the
  // line's own action (back up, resume, try now, decide) is what lets it go ahead. While a backup
  // runs its progress says more; the reset follows by itself.
  if (connected && s.reimage?.state === 'waiting' && line.icon !== 'syncing') {
    return {
      ...line,
      tone: line.tone === 'danger' ? 'danger' : 'warn',
      sentence: 'Reimage requested by helpdesk — waiting for your files to be backed up',
      detail: `${line.sentence}. The reset runs by itself once they are on the storage; your home is kept.`,
    };
  }
  return line;
}

function backupLine(s: AgentStatus, now: number, connected: boolean): SafetyLine {
  if (!connected) {
    return { tone: 'danger', icon: 'disconnected', sentence: 'Not connected — retrying', detail: 'The Tabula agent does not answer; this window reconnects by itself when it is back.', action: null };
  }
  const b = s.backup;
  const where = storageName(b.storage);
  const age = b.lastSuccessAt ? now - Date.parse(b.lastSuccessAt) : null;
  const staleTone: SafetyTone | null = age === null ? null : age > STALE_RED_MS ? 'danger' : age > STALE_AMBER_MS ? 'warn' : null;
  const last = b.lastSuccessAt ? `Last backup ${timeAgo(b.lastSuccessAt, now)}.` : 'Never backed up to this storage.';
  const backUp = { id: 'backup-now' as const, label: 'Back up now' };
  // null: they could not be counted, which is not zero.
  const changes = (n: number | null) => (n === null ? 'changes' : plural(n, 'change'));

  if (b.state === 'running') {
    const pct = b.progress ? ` ${b.progress.percent}%` : '';
    return { tone: 'info', icon: 'syncing', sentence: `Backing up to ${where}…${pct}`, detail: b.lastSuccessAt ? last : '', action: null };
  }
  if (b.state === 'attention') {
    if (b.conflicts.length) {
      return {
        tone: 'warn',
        icon: 'decision',
        sentence: `${plural(b.conflicts.length, 'file needs', 'files need')} your decision`,
        detail: 'Changed here and elsewhere: both versions are kept until you choose.',
        action: { id: 'review-conflicts', label: 'Review' },
      };
    }
    return {
      tone: 'warn',
      icon: 'decision',
      sentence: 'Backup stopped to protect your files',
      detail: b.wouldDeleteCount ? `It would delete ${plural(b.wouldDeleteCount, 'file')}; nothing was changed. ${last}` : `${b.reason} ${last}`,
      action: { id: 'review-refusal', label: 'Review' },
    };
  }
  if (b.state === 'paused') {
    return {
      tone: staleTone ?? 'warn',
      icon: 'paused',
      sentence: b.queuedChanges ? `Backup paused — ${changes(b.queuedChanges)} only on this laptop` : 'Backup paused',
      detail: `New changes stay only on this laptop until you resume. ${last}`,
      action: { id: 'resume', label: 'Resume' },
    };
  }
  if (b.state === 'failed') {
    return { tone: 'danger', icon: 'error', sentence: 'Backup failed', detail: `${b.reason} ${last}`, action: { id: 'backup-now', label: 'Try again' } };
  }
  if (b.state === 'offline') {
    const next = b.nextAttemptAt ? `, next try ${clockTime(b.nextAttemptAt)}` : '';
    return {
      tone: staleTone === 'danger' ? 'danger' : 'warn',
      icon: 'queued',
      sentence: `Waiting for storage — ${changes(b.queuedChanges)} queued${next}`,
      detail: `${b.reason.replace(/^Waiting for storage — [^.]*\. /, '').replace(/ Next try at [^.]*\.$/, '')} ${last}`.trim(),
      action: { id: 'backup-now', label: 'Try now' },
    };
  }
  if (b.localOnly) {
    return {
      tone: 'warn',
      icon: 'local-only',
      sentence: 'Local copy only — no network storage configured',
      detail: 'Copies stay on this laptop’s own disk: a lost or broken laptop loses them. Ask your helpdesk for network storage.',
      action: null,
    };
  }
  if (b.state === 'never') {
    return { tone: 'warn', icon: 'pending', sentence: `Not backed up to ${where} yet`, detail: 'Your files are only on this laptop until the first backup.', action: backUp };
  }
  if (staleTone) {
    return {
      tone: staleTone,
      icon: 'stale',
      sentence: `Last backup ${timeAgo(b.lastSuccessAt, now)}`,
      detail: b.state === 'deferred' ? b.reason : `Changes since then are only on this laptop.`,
      action: backUp,
    };
  }
  if (b.queuedChanges !== null && b.queuedChanges > 0 && b.lastSuccessAt) {
    return {
      tone: 'info',
      icon: 'pending',
      sentence: `${changes(b.queuedChanges)} only on this laptop since ${sinceWhen(b.lastSuccessAt, now)}`,
      detail: b.state === 'deferred' ? b.reason : 'They go to the storage at the next backup.',
      action: backUp,
    };
  }
  const u = s.imageUpdate;
  if (u.restartRequired) {
    return {
      tone: 'info',
      icon: 'update',
      sentence: u.reimagePending ? 'Restart to finish the reset' : `Restart to update to ${u.staged?.version ?? 'the new version'}`,
      detail: `Your files are safe on ${where} — backed up ${timeAgo(b.lastSuccessAt, now)}.`,
      action: { id: 'show-update', label: 'Details' },
    };
  }
  if (b.state === 'deferred') {
    return { tone: 'ok', icon: 'safe', sentence: `Safe on ${where} — backed up ${timeAgo(b.lastSuccessAt, now)}`, detail: b.reason, action: backUp };
  }
  return { tone: 'ok', icon: 'safe', sentence: `Safe on ${where} — backed up ${timeAgo(b.lastSuccessAt, now)}`, detail: '', action: null };
}

// ---- Desktop notifications (the window's Notification API and the Electron shell share this) ------

export interface NotifyMemory {
  /** When the person was last told that backups are stale (ms). */
  staleAt: number | null;
  /** What was last announced as needing a decision (so it is said once, not on every refresh). */
  decision: string | null;
}

export const emptyNotifyMemory: NotifyMemory = { staleAt: null, decision: null };

/**
 * Whether to notify now: once a day while no backup succeeded for more than a day, and once for each
 * new thing that needs a decision. Returns the notification (or null) and what to remember.
 */
export function nextNotification(s: AgentStatus, mem: NotifyMemory, now: number): { notify: { title: string; body: string } | null; memory: NotifyMemory } {
  const line = safetyLine(s, now);
  const b = s.backup;
  const decision = line.icon === 'decision' ? (b.conflicts.length ? `conflicts:${b.conflicts.map((c) => c.path).join('|')}` : `refusal:${b.since}`) : null;
  if (decision && decision !== mem.decision) {
    return { notify: { title: 'Tabula: your backup needs a decision', body: `${line.sentence}. ${line.detail}`.trim() }, memory: { ...mem, decision } };
  }
  const age = b.lastSuccessAt ? now - Date.parse(b.lastSuccessAt) : null;
  const stale = age !== null && age > STALE_AMBER_MS && !b.localOnly;
  if (stale && (mem.staleAt === null || now - mem.staleAt >= DAY)) {
    return {
      notify: { title: `Tabula: last backup ${timeAgo(b.lastSuccessAt, now)}`, body: `${line.sentence}. Changes since then are only on this laptop.` },
      memory: { decision, staleAt: now },
    };
  }
  return { notify: null, memory: { ...mem, decision } };
}

// The safety line for every state the agent can be in: what a person reads at the top of the window.
import { describe, expect, it } from 'vitest';
import { clockTime, emptyNotifyMemory, nextNotification, safetyLine, sinceWhen, storageName, timeAgo } from '../../src-main/common/safety-line';
import { agentStatus as status, stagedImage } from '../support/agent-status';

const now = Date.parse('2026-11-22T10:00:00Z');
const conflict = { path: 'a.txt', conflictPath: 'a (conflict).txt', kept: 'local' as const, at: '' };

describe('safety line', () => {
  it('safe: names the storage and how long ago, green, no action needed', () => {
    expect(safetyLine(status({}), now)).toEqual({ tone: 'ok', icon: 'safe', sentence: 'Safe on nas.example — backed up 2 min ago', detail: '', action: null });
    expect(safetyLine(status({ storage: '/mnt/nas/ann' }), now).sentence).toBe('Safe on nas/ann — backed up 2 min ago');
    expect(safetyLine(status({ storage: '/nas' }), now).sentence).toBe('Safe on /nas — backed up 2 min ago');
  });

  it('changes only on this laptop: how many and since when, with Back up now', () => {
    const l = safetyLine(status({ queuedChanges: 12, lastSuccessAt: '2026-11-22T08:30:00Z' }), now);
    expect(l).toMatchObject({ tone: 'info', icon: 'pending', action: { id: 'backup-now', label: 'Back up now' } });
    expect(l.sentence).toBe(`12 changes only on this laptop since ${clockTime('2026-11-22T08:30:00Z')}`);
    expect(safetyLine(status({ queuedChanges: 1, lastSuccessAt: '2026-11-22T08:30:00Z' }), now).sentence).toMatch(/^1 change only on this laptop/);
  });

  it('waiting for storage: queued count and next try, amber, the cause underneath', () => {
    const l = safetyLine(
      status({ state: 'offline', queuedChanges: 12, nextAttemptAt: '2026-11-22T10:05:00Z', reason: 'Waiting for storage — 12 changes queued. The storage nas.example cannot be reached right now (connection refused).' }),
      now,
    );
    expect(l).toMatchObject({ tone: 'warn', icon: 'queued', action: { id: 'backup-now', label: 'Try now' } });
    expect(l.sentence).toBe(`Waiting for storage — 12 changes queued, next try ${clockTime('2026-11-22T10:05:00Z')}`);
    expect(l.detail).toBe('The storage nas.example cannot be reached right now (connection refused). Last backup 2 min ago.');
    expect(l.sentence + l.detail).not.toContain('Offline');
  });

  it('waiting for storage with changes that could not be counted says so, never "0 changes"', () => {
    const l = safetyLine(status({ state: 'offline', queuedChanges: null, reason: 'Waiting for storage — changes queued (how many cannot be told now). The storage nas.example cannot be reached right now (connection refused).' }), now);
    expect(l.sentence).toBe('Waiting for storage — changes queued');
    expect(l.detail).toBe('The storage nas.example cannot be reached right now (connection refused). Last backup 2 min ago.');
  });

  it('local copy only: the built-in folder on the same disk is amber, never "Safe"', () => {
    const l = safetyLine(status({ localOnly: true, storage: '/home/ann/.local/share/tabula/storage' }), now);
    expect(l).toMatchObject({ tone: 'warn', icon: 'local-only', sentence: 'Local copy only — no network storage configured' });
    expect(l.sentence).not.toMatch(/safe/i);
  });

  it('restart to update to V, once the files are safe', () => {
    const l = safetyLine(status({}, [], stagedImage), now);
    expect(l).toMatchObject({ tone: 'info', icon: 'update', sentence: 'Restart to update to 2026.12.1', action: { id: 'show-update' } });
    expect(l.detail).toBe('Your files are safe on nas.example — backed up 2 min ago.');
    // A backup problem is more urgent than an update.
    expect(safetyLine(status({ state: 'failed', reason: 'x' }), now).icon).toBe('error');
  });

  it('paused: amber with Resume', () => {
    expect(safetyLine(status({ state: 'paused', paused: true }), now)).toMatchObject({ tone: 'warn', icon: 'paused', sentence: 'Backup paused', action: { id: 'resume', label: 'Resume' } });
    expect(safetyLine(status({ state: 'paused', paused: true, queuedChanges: 4 }), now).sentence).toBe('Backup paused — 4 changes only on this laptop');
  });

  it('a helpdesk reimage waiting for the backup comes first, with what it waits for and the action that lets it go', () => {
    const waiting = { state: 'waiting' as const, reason: 'Reimage requested by helpdesk — waiting for your files to be backed up: …', startsAt: null, origin: 'fleet-command' as const };
    const pending = { ...status({ queuedChanges: 2, lastSuccessAt: '2026-11-22T08:30:00Z' }), reimage: waiting };
    expect(safetyLine(pending, now)).toEqual({
      tone: 'warn',
      icon: 'pending',
      sentence: 'Reimage requested by helpdesk — waiting for your files to be backed up',
      detail: `2 changes only on this laptop since ${clockTime('2026-11-22T08:30:00Z')}. The reset runs by itself once they are on the storage; your home is kept.`,
      action: { id: 'backup-now', label: 'Back up now' },
    });
    // Paused: Resume is what lets it go ahead; offline: Try now; a backup running shows its progress.
    expect(safetyLine({ ...status({ state: 'paused', paused: true, queuedChanges: 2 }), reimage: waiting }, now)).toMatchObject({ sentence: 'Reimage requested by helpdesk — waiting for your files to be backed up', action: { id: 'resume' } });
    expect(safetyLine({ ...status({ state: 'offline', queuedChanges: 2, reason: 'Waiting for storage — 2 changes queued. The storage cannot be reached.' }), reimage: waiting }, now).action).toMatchObject({ id: 'backup-now', label: 'Try now' });
    expect(safetyLine({ ...status({ state: 'running' }), reimage: waiting }, now).icon).toBe('syncing');
    // Any other reset state leaves the line as it was.
    expect(safetyLine({ ...status({}), reimage: { ...waiting, state: 'countdown' } }, now).sentence).toMatch(/^Safe on/);
  });

  it('needs a decision: conflicts, or a sync refused for safety', () => {
    expect(safetyLine(status({ state: 'attention', conflicts: [conflict, { ...conflict, path: 'b' }] }), now)).toMatchObject({
      tone: 'warn',
      icon: 'decision',
      sentence: '2 files need your decision',
      action: { id: 'review-conflicts', label: 'Review' },
    });
    // The refusal names the first 50 files; the count is all of them.
    const refused = safetyLine(status({ state: 'attention', wouldDelete: Array.from({ length: 50 }, (_, i) => `~/f${i}`), wouldDeleteCount: 410, reason: 'This sync would delete 410 of 500 files.' }), now);
    expect(refused).toMatchObject({ icon: 'decision', sentence: 'Backup stopped to protect your files', action: { id: 'review-refusal' } });
    expect(refused.detail).toBe('It would delete 410 files; nothing was changed. Last backup 2 min ago.');
    expect(refused.detail).not.toContain('--force');
  });

  it('error: red, the reason underneath, Try again', () => {
    const l = safetyLine(status({ state: 'failed', reason: 'The storage nas.example is full, so the backup could not finish.' }), now);
    expect(l).toMatchObject({ tone: 'danger', icon: 'error', sentence: 'Backup failed', action: { id: 'backup-now', label: 'Try again' } });
    expect(l.detail).toContain('is full');
  });

  it('stale: more than a day without a backup is amber, more than a week red', () => {
    expect(safetyLine(status({ lastSuccessAt: '2026-11-21T09:00:00Z' }), now)).toMatchObject({ tone: 'warn', icon: 'stale', sentence: 'Last backup 1 day ago' });
    expect(safetyLine(status({ lastSuccessAt: '2026-11-19T10:00:00Z' }), now)).toMatchObject({ tone: 'warn', icon: 'stale', sentence: 'Last backup 3 days ago' });
    expect(safetyLine(status({ lastSuccessAt: '2026-11-14T10:00:00Z' }), now)).toMatchObject({ tone: 'danger', icon: 'stale', sentence: 'Last backup 8 days ago' });
    expect(safetyLine(status({ lastSuccessAt: '2026-11-21T11:00:00Z' }), now).tone).toBe('ok');
    // Offline for more than a week: the queued line turns red.
    expect(safetyLine(status({ state: 'offline', queuedChanges: 2, lastSuccessAt: '2026-11-10T10:00:00Z', reason: '' }), now).tone).toBe('danger');
  });

  it('syncing, never backed up, waiting for an unmetered network, not connected', () => {
    expect(safetyLine(status({ state: 'running' }), now)).toMatchObject({ tone: 'info', icon: 'syncing', sentence: 'Backing up to nas.example…' });
    expect(safetyLine(status({ state: 'never', lastSuccessAt: null }), now)).toMatchObject({ tone: 'warn', sentence: 'Not backed up to nas.example yet', action: { id: 'backup-now' } });
    expect(safetyLine(status({ state: 'deferred', reason: 'The connection is metered.' }), now)).toMatchObject({ tone: 'ok', detail: 'The connection is metered.' });
    expect(safetyLine(status({}), now, false)).toMatchObject({ tone: 'danger', icon: 'disconnected', sentence: 'Not connected — retrying', action: null });
  });
});

describe('time words', () => {
  it('ago, since, storage names', () => {
    expect(timeAgo(null, now)).toBe('never');
    expect(timeAgo('2026-11-22T09:59:40Z', now)).toBe('just now');
    expect(timeAgo('2026-11-22T07:00:00Z', now)).toBe('3 h ago');
    expect(timeAgo('2026-11-21T09:00:00Z', now)).toBe('1 day ago');
    expect(sinceWhen('2026-11-10T09:00:00Z', now)).not.toContain(':');
    expect(storageName('ssh://ann@nas.example:22/srv/homes/ann')).toBe('nas.example');
    expect(storageName('ssh://[::1]:2222/x')).toBe('[::1]');
  });
});

describe('desktop notifications', () => {
  it('stale: once a day, not on every refresh', () => {
    const s = status({ lastSuccessAt: '2026-11-19T10:00:00Z' });
    const first = nextNotification(s, emptyNotifyMemory, now);
    expect(first.notify).toEqual({ title: 'Tabula: last backup 3 days ago', body: 'Last backup 3 days ago. Changes since then are only on this laptop.' });
    expect(nextNotification(s, first.memory, now + 3_600_000).notify).toBeNull();
    expect(nextNotification(s, first.memory, now + 86_400_000).notify?.title).toBe('Tabula: last backup 4 days ago');
    expect(nextNotification(status({}), emptyNotifyMemory, now).notify).toBeNull();
  });

  it('a decision: once per new conflict set', () => {
    const s = status({ state: 'attention', conflicts: [conflict] });
    const first = nextNotification(s, emptyNotifyMemory, now);
    expect(first.notify?.title).toBe('Tabula: your backup needs a decision');
    expect(first.notify?.body).toContain('1 file needs your decision');
    expect(nextNotification(s, first.memory, now + 1000).notify).toBeNull();
    expect(nextNotification(status({ state: 'attention', conflicts: [conflict, { ...conflict, path: 'b' }] }), first.memory, now).notify).not.toBeNull();
  });
});

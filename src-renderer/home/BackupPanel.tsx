import { useStore, type StoreApi } from 'zustand';
import type { BackupRun } from '../../src-main/common/contract';
import { useAgentConnected, useAgentReason } from '../shared/connection';
import { FeedbackLine } from '../shared/FeedbackLine';
import { formatBytes, formatDuration, formatWhen, plural, timeAgo } from '../shared/format';
import { useNow } from '../shared/use-now';
import type { BackupState } from './backup-store';

const phases = { listing: 'Looking for changes', comparing: 'Comparing', pulling: 'Bringing in changes', pushing: 'Backing up' } as const;

/** "401 files backed up, 2 brought in" — files, the same word and count as the run's summary. */
function runSummary(run: BackupRun): string {
  if (run.outcome !== 'success') return run.outcome === 'cancelled' ? 'Stopped before it finished.' : 'Failed.';
  const parts = [run.pushed && `${plural(run.pushed, 'file')} backed up`, run.pulled && `${plural(run.pulled, 'file')} brought in`, run.deleted && `${plural(run.deleted, 'file')} deleted`].filter(Boolean);
  return parts.length ? `${parts.join(', ')}.` : 'Nothing had changed.';
}

/** The engine's refusal, without advice meant for the command line (the window has its own button). */
const forWindow = (reason: string) =>
  reason
    .replace(/\s*Check the storage, then sync with --force to go ahead\.?/, '')
    .replace(/\s*It would have deleted \d+ files?\./, '')
    .replace(/\s*Nothing was changed\.$/, '');

export function BackupPanel({ store }: { store: StoreApi<BackupState> }) {
  const status = useStore(store, (s) => s.status);
  const busy = useStore(store, (s) => s.busy);
  const { start, cancel, pause, resume } = store.getState();
  const now = useNow();
  // Disabled by the page's fieldset while the agent is away; each button also says why.
  const connected = useAgentConnected();
  const why = useAgentReason();
  if (!status) return null;
  const p = status.progress;
  const running = status.state === 'running';
  const refused = status.wouldDelete.length > 0;
  return (
    <section className="card" aria-labelledby="backup-title">
      <h2 id="backup-title">Backup</h2>
      <dl className="facts">
        <dt>Storage</dt>
        <dd data-testid="backup-storage">
          {status.storage}
          {status.localOnly && <span className="tag warn">this laptop’s own disk</span>}
        </dd>
        <dt>Last backup</dt>
        <dd data-testid="last-backup">{status.lastSuccessAt ? `${timeAgo(status.lastSuccessAt, now)} (${formatWhen(status.lastSuccessAt)})` : 'never'}</dd>
        {status.lastRun && (
          <>
            <dt>Last run</dt>
            <dd data-testid="last-run">{runSummary(status.lastRun)}</dd>
          </>
        )}
      </dl>
      {running && (
        <div className="progress">
          <progress max={100} value={p?.percent ?? undefined} aria-label="Backup progress" />
          <p className="muted" data-testid="backup-progress">
            {p ? `${phases[p.phase]} · ${p.percent}%` : 'Preparing…'}
            {p?.bytesTotal ? ` · ${formatBytes(p.bytesDone)} of ${formatBytes(p.bytesTotal)}` : ''}
            {p?.etaSeconds ? ` · about ${formatDuration(p.etaSeconds)} left` : ''}
          </p>
          {p?.currentFile && (
            <p className="muted current-file" title={p.currentFile}>
              {p.currentFile}
            </p>
          )}
        </div>
      )}
      {status.state === 'failed' && status.lastRun?.error?.details && (
        <ul className="details" aria-label="Files concerned">
          {status.lastRun.error.details.slice(0, 10).map((d) => (
            <li key={d}>{d}</li>
          ))}
        </ul>
      )}
      {refused && (
        <div className="refusal" data-testid="would-delete">
          <h3 id="refusal-title" tabIndex={-1}>
            Nothing was changed
          </h3>
          {/* The reason already says how many; the heading says nothing was changed. */}
          <p>{forWindow(status.reason)}</p>
          <ul className="details" aria-label="Files it would delete">
            {status.wouldDelete.slice(0, 10).map((d) => (
              <li key={d}>{d}</li>
            ))}
            {status.wouldDeleteCount > 10 && <li>… and {plural(status.wouldDeleteCount - 10, 'more file')}</li>}
          </ul>
          <p className="muted small">If these deletions are what you meant, sync anyway. If not, check that the storage is the right one and mounted.</p>
        </div>
      )}
      <div className="actions">
        {running ? (
          <button type="button" onClick={() => void cancel()} disabled={!connected} {...why}>
            Stop backup
          </button>
        ) : (
          <button type="button" onClick={() => void start()} disabled={!connected || status.paused || busy === 'backup'} {...why}>
            Back up now
          </button>
        )}
        {refused && !running && (
          <button type="button" className="danger" onClick={() => void start(true)} disabled={!connected} {...why}>
            Sync anyway
          </button>
        )}
        {status.paused ? (
          <button type="button" className="secondary" onClick={() => void resume()} disabled={!connected} {...why}>
            Resume backups
          </button>
        ) : (
          <button type="button" className="secondary" onClick={() => void pause()} disabled={!connected} {...why}>
            Pause backups
          </button>
        )}
      </div>
      <FeedbackLine store={store} place="backup" />
    </section>
  );
}

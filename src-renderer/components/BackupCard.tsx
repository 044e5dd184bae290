import { useStore, type StoreApi } from 'zustand';
import type { BackupState as Store } from '../stores/status-stores';
import { useNow } from './App';
import { formatBytes, formatDuration, timeAgo } from './format';

const labels = { never: 'Not synced yet', idle: 'Backed up', running: 'Syncing', failed: 'Sync failed', offline: 'Offline', paused: 'Paused', attention: 'Needs you', deferred: 'Waiting' } as const;
const phases = { listing: 'Looking for changes', comparing: 'Comparing', pulling: 'Bringing in changes', pushing: 'Backing up' } as const;

export function BackupCard({ store }: { store: StoreApi<Store> }) {
  const status = useStore(store, (s) => s.status);
  const actionError = useStore(store, (s) => s.actionError);
  const notice = useStore(store, (s) => s.notice);
  const { start, cancel, pause, resume } = store.getState();
  const now = useNow();
  if (!status) {
    return (
      <section className="card">
        <h2>Home sync</h2>
        <p className="muted">Loading…</p>
      </section>
    );
  }
  const p = status.progress;
  const running = status.state === 'running';
  return (
    <section className="card" aria-labelledby="backup-title">
      <h2 id="backup-title">Home sync</h2>
      <p className={`state state-${status.state}`} data-testid="backup-state">
        <span className="dot" aria-hidden="true" />
        {labels[status.state]}
        {status.state === 'idle' && ` ${timeAgo(status.lastSuccessAt, now)}`}
      </p>
      <p data-testid="backup-reason">{status.reason}</p>
      {running && (
        <div className="progress">
          <progress max={100} value={p?.percent ?? undefined} aria-label="Sync progress" />
          <p className="muted" data-testid="backup-progress">
            {p ? `${phases[p.phase]} · ${p.percent}% · ${p.filesDone}${p.filesTotal !== null ? ` of ${p.filesTotal}` : ''} items` : 'Preparing…'}
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
      {status.state === 'offline' && status.nextAttemptAt && (
        <p className="muted" data-testid="next-attempt">
          Next try at {new Date(status.nextAttemptAt).toLocaleTimeString()}.
        </p>
      )}
      {(status.state === 'failed' || status.state === 'offline') && <p className="muted">Last successful sync: {timeAgo(status.lastSuccessAt, now)}</p>}
      {status.wouldDelete.length > 0 && (
        <div className="refusal" data-testid="would-delete">
          <p>It would have deleted:</p>
          <ul className="details">
            {status.wouldDelete.slice(0, 10).map((d) => (
              <li key={d}>{d}</li>
            ))}
            {status.wouldDelete.length > 10 && <li>… and {status.wouldDelete.length - 10} more</li>}
          </ul>
        </div>
      )}
      {status.lastRun?.error?.details && status.state === 'failed' && (
        <ul className="details">
          {status.lastRun.error.details.slice(0, 10).map((d) => (
            <li key={d}>{d}</li>
          ))}
        </ul>
      )}
      {actionError && (
        <p className="banner error" role="alert">
          {actionError.message}
        </p>
      )}
      {notice && (
        <p className="banner ok" role="status">
          {notice}
        </p>
      )}
      <div className="actions">
        <button type="button" onClick={() => void start()} disabled={running || status.paused}>
          Back up now
        </button>
        {running && (
          <button type="button" className="secondary" onClick={() => void cancel()}>
            Stop
          </button>
        )}
        {status.wouldDelete.length > 0 && (
          <button type="button" className="secondary danger" onClick={() => void start(true)}>
            Sync anyway
          </button>
        )}
        {status.paused ? (
          <button type="button" className="secondary" onClick={() => void resume()}>
            Resume
          </button>
        ) : (
          <button type="button" className="secondary" onClick={() => void pause()}>
            Pause
          </button>
        )}
      </div>
      <p className="muted small">Storage: {status.storage}</p>
    </section>
  );
}

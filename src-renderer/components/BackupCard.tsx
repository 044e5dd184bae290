import { useStore, type StoreApi } from 'zustand';
import type { BackupState as Store } from '../stores/status-stores';
import { useNow } from './App';
import { formatBytes, timeAgo } from './format';

const labels = { never: 'Not backed up yet', idle: 'Backed up', running: 'Backing up', failed: 'Backup failed', offline: 'Offline', paused: 'Paused', attention: 'Needs you' } as const;

export function BackupCard({ store }: { store: StoreApi<Store> }) {
  const status = useStore(store, (s) => s.status);
  const actionError = useStore(store, (s) => s.actionError);
  const start = useStore(store, (s) => s.start);
  const cancel = useStore(store, (s) => s.cancel);
  const now = useNow();
  if (!status) {
    return (
      <section className="card">
        <h2>Home backup</h2>
        <p className="muted">Loading…</p>
      </section>
    );
  }
  const p = status.progress;
  const running = status.state === 'running';
  return (
    <section className="card" aria-labelledby="backup-title">
      <h2 id="backup-title">Home backup</h2>
      <p className={`state state-${status.state}`} data-testid="backup-state">
        <span className="dot" aria-hidden="true" />
        {labels[status.state]}
        {status.state === 'idle' && ` ${timeAgo(status.lastSuccessAt, now)}`}
      </p>
      <p data-testid="backup-reason">{status.reason}</p>
      {running && (
        <div className="progress">
          <progress max={100} value={p?.percent ?? undefined} aria-label="Backup progress" />
          <p className="muted" data-testid="backup-progress">
            {p ? `${p.percent}% · ${p.filesDone}${p.filesTotal !== null ? ` of ${p.filesTotal}` : ''} items checked` : 'Preparing…'}
            {p?.bytesTotal ? ` · ${formatBytes(p.bytesDone)} of ${formatBytes(p.bytesTotal)}` : ''}
          </p>
          {p?.currentFile && (
            <p className="muted current-file" title={p.currentFile}>
              {p.currentFile}
            </p>
          )}
        </div>
      )}
      {(status.state === 'failed' || status.state === 'offline') && (
        <p className="muted">Last successful backup: {timeAgo(status.lastSuccessAt, now)}</p>
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
      <div className="actions">
        <button type="button" onClick={() => void start()} disabled={running}>
          Back up now
        </button>
        {running && (
          <button type="button" className="secondary" onClick={() => void cancel()}>
            Stop
          </button>
        )}
      </div>
      <p className="muted small">Storage: {status.storage}</p>
    </section>
  );
}

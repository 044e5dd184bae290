import { useStore, type StoreApi } from 'zustand';
import { FeedbackLine } from '../shared/FeedbackLine';
import { formatBytes, timeAgo } from '../shared/format';
import { useNow } from '../shared/use-now';
import type { ImageUpdateState as Store } from './image-store';

const labels = {
  disabled: 'Updates not configured',
  idle: 'Up to date',
  checking: 'Checking for updates',
  downloading: 'Downloading update',
  verifying: 'Verifying update',
  deploying: 'Preparing update',
  staged: 'Restart to update',
  deferred: 'Update waiting',
  offline: 'Update server offline',
  failed: 'Update failed',
  stale: 'Update server data out of date',
} as const;

export function UpdatePanel({ store }: { store: StoreApi<Store> }) {
  const s = useStore(store, (x) => x.status);
  const { check, pull, rollback } = store.getState();
  const now = useNow();
  if (!s) return null;
  const busy = ['checking', 'downloading', 'verifying', 'deploying'].includes(s.state);
  const newer = s.available && !s.staged && s.available.version !== s.booted?.version;
  const label = s.state === 'idle' && newer ? 'Update available' : labels[s.state];
  const p = s.progress;
  return (
    <section className="card" aria-labelledby="update-title">
      <h2 id="update-title" tabIndex={-1}>
        System updates
      </h2>
      <p className={`state state-${s.state}`} data-testid="update-state">
        <span className="dot" aria-hidden="true" />
        {label}
      </p>
      <p data-testid="update-reason">{s.reason}</p>
      {busy && (
        <div className="progress">
          <progress max={100} value={p?.percent ?? undefined} aria-label="Update progress" />
          <p className="muted" data-testid="update-progress">
            {p ? `${p.phase === 'downloading' ? 'Downloading' : p.phase === 'verifying' ? 'Verifying' : 'Preparing'} · ${p.percent}%` : 'Starting…'}
            {p?.bytesTotal ? ` · ${formatBytes(p.bytesDone)} of ${formatBytes(p.bytesTotal)}` : ''}
          </p>
        </div>
      )}
      {s.lastError?.details && (s.state === 'failed' || s.state === 'offline') && (
        <ul className="details">
          {s.lastError.details.slice(0, 10).map((d) => (
            <li key={d}>{d}</li>
          ))}
        </ul>
      )}
      {s.backend !== 'none' && (
        <dl className="facts">
          <dt>Running</dt>
          <dd data-testid="update-booted">{s.booted?.version ?? 'unknown'}</dd>
          {s.staged && (
            <>
              <dt>Next restart</dt>
              <dd data-testid="update-staged">{s.staged.version}</dd>
            </>
          )}
          {s.available && (
            <>
              <dt>Available</dt>
              <dd>{s.available.version}</dd>
            </>
          )}
          <dt>Channel</dt>
          <dd>{s.channel}</dd>
          <dt>Last check</dt>
          <dd>{timeAgo(s.lastCheckAt, now)}</dd>
          <dt>Next check</dt>
          <dd>{s.nextCheckAt ? new Date(s.nextCheckAt).toLocaleString() : '—'}</dd>
          {s.lastPullBytes !== null && (
            <>
              <dt>Last download</dt>
              <dd>{formatBytes(s.lastPullBytes)}</dd>
            </>
          )}
        </dl>
      )}
      {s.policyProblem && (
        <p className="banner warning" role="alert">
          Fleet policy ignored: {s.policyProblem}
        </p>
      )}
      {s.backend !== 'none' && (
        <div className="actions">
          {s.restartRequired && <strong className="restart-hint">Restart the computer to update</strong>}
          {newer ? (
            <button type="button" onClick={() => void pull()} disabled={busy}>
              Download update
            </button>
          ) : (
            <button type="button" onClick={() => void check()} disabled={busy}>
              Check now
            </button>
          )}
          {s.rollback && (
            <button type="button" className="secondary" onClick={() => void rollback()} disabled={busy}>
              {s.staged ? `Keep ${s.rollback.version}` : `Go back to ${s.rollback.version}`}
            </button>
          )}
        </div>
      )}
      <FeedbackLine store={store} place="update" />
    </section>
  );
}

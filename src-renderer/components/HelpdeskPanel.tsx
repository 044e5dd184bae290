import { useEffect, useState } from 'react';
import { useStore, type StoreApi } from 'zustand';
import type { HelpdeskState } from '../stores/image-store';
import { useNow } from './App';
import { timeAgo } from './format';

/** Seconds left until the reset, ticking every second. */
function useSecondsLeft(startsAt: string | null): number | null {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!startsAt) return;
    const t = setInterval(() => setNow(Date.now()), 250);
    return () => clearInterval(t);
  }, [startsAt]);
  return startsAt ? Math.max(0, Math.ceil((Date.parse(startsAt) - now) / 1000)) : null;
}

export function HelpdeskPanel({ store }: { store: StoreApi<HelpdeskState> }) {
  const open = useStore(store, (s) => s.open);
  const plan = useStore(store, (s) => s.plan);
  const reimage = useStore(store, (s) => s.reimage);
  const error = useStore(store, (s) => s.error);
  const diagnosticsFile = useStore(store, (s) => s.diagnosticsFile);
  const { toggle, start, cancel, diagnostics } = store.getState();
  const [override, setOverride] = useState(false);
  const now = useNow();
  const left = useSecondsLeft(reimage?.state === 'countdown' ? reimage.startsAt : null);
  return (
    <section className="card" aria-labelledby="helpdesk-title">
      <h2 id="helpdesk-title">
        <button type="button" className="link" aria-expanded={open} onClick={() => void toggle()}>
          Helpdesk
        </button>
      </h2>
      {reimage && reimage.state !== 'none' && (
        <p className={`banner ${reimage.state === 'failed' ? 'error' : 'warning'}`} role="alert" data-testid="reimage-status">
          {reimage.state === 'countdown' && left !== null ? `Resetting this computer in ${left} s. ` : ''}
          {reimage.reason}
          {reimage.state === 'countdown' && (
            <button type="button" className="secondary inline" onClick={() => void cancel()}>
              Stop the reset
            </button>
          )}
        </p>
      )}
      {open && plan && (
        <>
          <dl className="facts" data-testid="machine-identity">
            <dt>Computer</dt>
            <dd>{plan.identity.hostname}</dd>
            <dt>Machine ID</dt>
            <dd>
              <code>{plan.identity.machineId ?? 'unknown'}</code>
            </dd>
            <dt>MAC address</dt>
            <dd>
              <code>{plan.identity.primaryMac ?? 'none'}</code>
            </dd>
            <dt>Class</dt>
            <dd>{plan.identity.machineClass}</dd>
            <dt>Image</dt>
            <dd>
              {plan.image.booted?.version ?? 'unknown'}
              {plan.image.staged ? ` (next restart: ${plan.image.staged.version})` : ''}
            </dd>
            <dt>Last backup</dt>
            <dd>{timeAgo(plan.lastBackupAt, now)}</dd>
            <dt>Not on storage</dt>
            <dd data-testid="unsynced-count">
              {plan.home.count} {plan.home.count === 1 ? 'file' : 'files'}
              {plan.home.queued ? `, ${plan.home.queued} backup running` : ''}
            </dd>
          </dl>
          <h3>Reset to the pristine image</h3>
          <ol className="steps">
            {plan.steps.map((s) => (
              <li key={s}>{s}</li>
            ))}
          </ol>
          {plan.refusedReason && (
            <div className="banner warning" data-testid="reimage-refused">
              <p>Reset not possible now: {plan.refusedReason}</p>
              {plan.home.paths.length > 0 && (
                <>
                  <p>These would be lost:</p>
                  <ul className="details">
                    {plan.home.paths.slice(0, 20).map((p) => (
                      <li key={p}>{p}</li>
                    ))}
                    {plan.home.count > 20 && <li>… and {plan.home.count - 20} more</li>}
                  </ul>
                  <label>
                    <input type="checkbox" checked={override} onChange={(e) => setOverride(e.target.checked)} /> I have checked this list: reset anyway
                    and lose these {plan.home.count} files
                  </label>
                </>
              )}
            </div>
          )}
          {error && (
            <p className="banner error" role="alert">
              {error.message}
            </p>
          )}
          <div className="actions">
            <button type="button" className="danger" disabled={(!!plan.refusedReason && !override) || reimage?.state === 'countdown' || reimage?.state === 'running'} onClick={() => void start(override && !!plan.refusedReason)}>
              Reset this computer…
            </button>
            <button type="button" className="secondary" onClick={() => void diagnostics()}>
              Export diagnostics
            </button>
          </div>
          {diagnosticsFile && <p className="muted small">Diagnostics saved to {diagnosticsFile}</p>}
        </>
      )}
    </section>
  );
}

// Helpdesk: the machine at a glance, what a reset would do and whether it is safe now, and the
// diagnostics bundle (save, copy, open its folder).
import { useEffect, useState } from 'react';
import { useStore } from 'zustand';
import type { Stores } from '../app/stores';
import { FeedbackLine } from '../shared/FeedbackLine';
import { imageLabel, plural, timeAgo } from '../shared/format';
import { useNow } from '../shared/use-now';

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

export function HelpdeskPage({ stores }: { stores: Stores }) {
  const store = stores.helpdesk;
  const plan = useStore(store, (s) => s.plan);
  const reimage = useStore(store, (s) => s.reimage);
  const busy = useStore(store, (s) => s.busy);
  const image = useStore(stores.agent, (s) => s.status?.image ?? null);
  const { loadPlan, start, cancel, exportDiagnostics, copyDiagnostics, showDiagnostics } = store.getState();
  const [override, setOverride] = useState(false);
  const now = useNow();
  const left = useSecondsLeft(reimage?.state === 'countdown' ? reimage.startsAt : null);
  useEffect(() => void loadPlan(), [loadPlan]);

  const imageConfigured = plan ? plan.image.backend !== 'none' : false;
  // The override is for "files not on the storage yet" only: no checkbox can make up for a missing image source.
  const canOverride = !!plan?.refusedReason && imageConfigured && plan.home.count > 0 && !plan.home.unknownReason;
  const running = reimage?.state === 'countdown' || reimage?.state === 'running';
  return (
    <>
      <section className="card" aria-labelledby="machine-title">
        <h2 id="machine-title">This computer</h2>
        {!plan && <p className="muted">Looking at this computer…</p>}
        {plan && (
          <dl className="facts" data-testid="machine-identity">
            <dt>Computer</dt>
            <dd>{plan.identity.hostname}</dd>
            <dt>Machine ID</dt>
            <dd>
              <code className="wrap">{plan.identity.machineId ?? 'unknown'}</code>
            </dd>
            <dt>MAC address</dt>
            <dd>
              <code>{plan.identity.primaryMac ?? 'none'}</code>
            </dd>
            <dt>Class</dt>
            <dd>{plan.identity.machineClass}</dd>
            <dt>Image</dt>
            <dd data-testid="helpdesk-image">
              {plan.image.booted?.version ?? (image ? imageLabel(image) : 'unknown')}
              {plan.image.staged ? ` (next restart: ${plan.image.staged.version})` : ''}
            </dd>
            <dt>Last backup</dt>
            <dd>{timeAgo(plan.lastBackupAt, now)}</dd>
            <dt>Only on this laptop</dt>
            <dd data-testid="unsynced-count">
              {plan.home.unknownReason ? 'unknown' : plural(plan.home.count, 'file')}
              {plan.home.queued ? ` (a backup is waiting to run)` : ''}
            </dd>
          </dl>
        )}
        <FeedbackLine store={store} place="plan" />
      </section>

      <section className="card" aria-labelledby="reset-title">
        <h2 id="reset-title">Reset to the pristine image</h2>
        {reimage && reimage.state !== 'none' && (
          <div className={`banner ${reimage.state === 'failed' ? 'error' : 'warning'}`} role="alert" data-testid="reimage-status">
            <p>
              {reimage.state === 'countdown' && left !== null ? `Resetting this computer in ${left} s. ` : ''}
              {reimage.reason}
            </p>
            {reimage.state === 'countdown' && (
              <button type="button" className="secondary" onClick={() => void cancel()}>
                Stop the reset
              </button>
            )}
          </div>
        )}
        {plan && (
          <>
            <ol className="steps">
              {plan.steps.map((s) => (
                <li key={s}>{s}</li>
              ))}
            </ol>
            {plan.refusedReason && (
              <div className="banner warning" data-testid="reimage-refused">
                <p>Reset not possible now: {plan.refusedReason}</p>
                {canOverride && (
                  <>
                    <p>These files are only on this laptop (not on the storage yet):</p>
                    <ul className="details">
                      {plan.home.paths.slice(0, 20).map((p) => (
                        <li key={p}>{p}</li>
                      ))}
                      {plan.home.count > 20 && <li>… and {plan.home.count - 20} more</li>}
                    </ul>
                    <label className="check">
                      <input type="checkbox" checked={override} onChange={(e) => setOverride(e.target.checked)} /> I have checked this list: reset anyway, with{' '}
                      {plan.home.count === 1 ? 'this file' : `these ${plan.home.count} files`} only on this laptop
                    </label>
                  </>
                )}
              </div>
            )}
            <div className="actions">
              <button
                type="button"
                className="danger"
                disabled={!imageConfigured || (!!plan.refusedReason && !(canOverride && override)) || running || busy === 'reset'}
                onClick={() => void start(override && !!plan.refusedReason)}
              >
                Reset this computer…
              </button>
            </div>
          </>
        )}
        <FeedbackLine store={store} place="reset" />
      </section>

      <section className="card" aria-labelledby="diagnostics-title">
        <h2 id="diagnostics-title">Diagnostics</h2>
        <p className="muted small">One file with the configuration (secrets removed), preferences, recent events and the backup history.</p>
        <div className="actions">
          <button type="button" className="secondary" disabled={busy === 'diagnostics'} onClick={() => void exportDiagnostics()}>
            Save diagnostics
          </button>
          <button type="button" className="secondary" disabled={busy === 'diagnostics'} onClick={() => void copyDiagnostics()}>
            Copy diagnostics
          </button>
          <button type="button" className="secondary" disabled={busy === 'diagnostics'} onClick={() => void showDiagnostics()}>
            Open diagnostics folder
          </button>
        </div>
        <FeedbackLine store={store} place="diagnostics" />
      </section>
    </>
  );
}

// Conflicts: the same file changed here and elsewhere. Each version with its time, size and laptop,
// Open and Show in folder (through the agent), and three choices; "Keep both" is the neutral default.
import { useStore, type StoreApi } from 'zustand';
import type { ConflictInfo, ConflictVersion } from '../../src-main/common/contract';
import { FeedbackLine } from '../shared/FeedbackLine';
import { formatBytes, formatWhen } from '../shared/format';
import type { BackupState } from './backup-store';

// Selectors must return stable values: a fresh [] on every call would re-render forever.
const none: never[] = [];

function Version({ title, v, side, conflict, label, store }: { title: string; v: ConflictVersion | null; side: 'this-laptop' | 'storage'; conflict: ConflictInfo; label: string; store: StoreApi<BackupState> }) {
  const open = store.getState().open;
  const name = `${title} version of ${label}`;
  return (
    <div className="version" data-testid={`version-${side}`}>
      <h4>{title}</h4>
      {v ? (
        <>
          <p className="small">
            {formatWhen(v.modifiedAt)}
            <br />
            {formatBytes(v.size)}
            <br />
            <span className="muted">{side === 'this-laptop' ? `made on this laptop${v.host ? ` (${v.host})` : ''}` : v.host ? `made on ${v.host}` : 'from another laptop, via the storage'}</span>
          </p>
          <div className="actions compact">
            <button type="button" className="secondary" aria-label={`Open ${name}`} onClick={() => void open(conflict.conflictPath, side, false)}>
              Open
            </button>
            <button type="button" className="secondary" aria-label={`Show ${name} in folder`} onClick={() => void open(conflict.conflictPath, side, true)}>
              Show in folder
            </button>
          </div>
        </>
      ) : (
        <p className="muted small">Not in your home any more.</p>
      )}
    </div>
  );
}

export function ConflictsInbox({ store }: { store: StoreApi<BackupState> }) {
  const conflicts = useStore(store, (s): ConflictInfo[] => s.status?.conflicts ?? none);
  const busy = useStore(store, (s) => s.busy);
  const resolve = store.getState().resolve;
  return (
    <>
      {conflicts.length > 0 && (
        <section className="card attention" aria-labelledby="conflicts-title" data-testid="conflicts">
          <h2 id="conflicts-title" tabIndex={-1}>
            Which version stays?
          </h2>
          <p className="muted">Changed on this laptop and on another one. Both versions are kept until you choose.</p>
          <ul className="conflicts">
            {conflicts.map((c) => {
              // Two conflicts on one file (it changed on both sides again) are told apart by their copy.
              const label = conflicts.filter((x) => x.path === c.path).length > 1 ? `${c.path} (copy ${c.conflictPath.slice(c.conflictPath.lastIndexOf('/') + 1)})` : c.path;
              return (
                <li key={c.conflictPath}>
                  <p className="path">
                    <strong>{label}</strong>
                  </p>
                  <div className="versions-pair">
                    <Version title="This laptop" v={c.versions?.thisLaptop ?? null} side="this-laptop" conflict={c} label={label} store={store} />
                    <Version title="Storage" v={c.versions?.storage ?? null} side="storage" conflict={c} label={label} store={store} />
                  </div>
                  <div className="actions">
                    <button type="button" disabled={busy === 'conflicts'} onClick={() => void resolve(c.conflictPath, 'both')} aria-label={`Keep both versions of ${label}`}>
                      Keep both
                    </button>
                    <button type="button" className="secondary" disabled={busy === 'conflicts'} onClick={() => void resolve(c.conflictPath, 'mine')} aria-label={`Keep this laptop’s version of ${label}`}>
                      Keep this laptop’s
                    </button>
                    <button type="button" className="secondary" disabled={busy === 'conflicts'} onClick={() => void resolve(c.conflictPath, 'theirs')} aria-label={`Keep the storage’s version of ${label}`}>
                      Keep the storage’s
                    </button>
                  </div>
                </li>
              );
            })}
          </ul>
        </section>
      )}
      <FeedbackLine store={store} place="conflicts" />
    </>
  );
}

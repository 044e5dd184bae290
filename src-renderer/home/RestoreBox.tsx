import { useState } from 'react';
import { useStore, type StoreApi } from 'zustand';
import { FeedbackLine } from '../shared/FeedbackLine';
import type { BackupState } from './backup-store';

export function RestoreBox({ store }: { store: StoreApi<BackupState> }) {
  const versions = useStore(store, (s) => s.versions);
  const busy = useStore(store, (s) => s.busy);
  const { findVersions, restore } = store.getState();
  const [path, setPath] = useState('');
  return (
    <section className="card" aria-labelledby="restore-title">
      <h2 id="restore-title">Restore a file or folder</h2>
      <form
        className="stacked"
        onSubmit={(e) => {
          e.preventDefault();
          if (path.trim()) void findVersions(path.trim());
        }}
      >
        <label htmlFor="restore-path">Path in your home</label>
        <div className="row">
          <input id="restore-path" value={path} onChange={(e) => setPath(e.target.value)} placeholder="e.g. Documents/report.odt" />
          <button type="submit" disabled={busy === 'restore'}>
            Show versions
          </button>
        </div>
      </form>
      {versions && (
        <ul className="versions" data-testid="versions" aria-label={`Versions of ${versions.path}`}>
          {versions.list.length === 0 && <li className="muted">The storage keeps no version of {versions.path}.</li>}
          {versions.list.map((v) => {
            const label = v.replacedAt ? `Version replaced ${new Date(v.replacedAt).toLocaleString()}` : 'Current copy on the storage';
            return (
              <li key={v.stamp ?? 'current'}>
                <span>{label}</span>
                <button type="button" className="secondary" aria-label={`Restore ${label.toLowerCase()}`} onClick={() => void restore(versions.path, v)}>
                  Restore
                </button>
              </li>
            );
          })}
        </ul>
      )}
      <FeedbackLine store={store} place="restore" />
    </section>
  );
}

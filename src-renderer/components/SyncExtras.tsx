// The rest of the sync panel: the conflicts inbox, older versions and restore, and sync settings.
import { useState } from 'react';
import { useStore, type StoreApi } from 'zustand';
import type { ConflictInfo } from '../../src-main/common/contract';
import type { BackupState as Store } from '../stores/status-stores';

// Selectors must return stable values: a fresh [] on every call would re-render forever.
const none: never[] = [];

export function ConflictsInbox({ store }: { store: StoreApi<Store> }) {
  const conflicts = useStore(store, (s): ConflictInfo[] => s.status?.conflicts ?? none);
  const resolve = store.getState().resolve;
  if (conflicts.length === 0) return null;
  return (
    <section className="card" aria-labelledby="conflicts-title" data-testid="conflicts">
      <h2 id="conflicts-title">Conflicts ({conflicts.length})</h2>
      <p className="muted">The same file changed here and elsewhere. Both versions are kept; choose which stays.</p>
      <ul className="conflicts">
        {conflicts.map((c) => (
          <li key={c.path}>
            <p>
              <strong>{c.path}</strong>
              <br />
              <span className="muted small">
                {c.kept === 'local' ? 'This laptop’s version' : 'The other version'} kept the name; the other is {c.conflictPath}
              </span>
            </p>
            <div className="actions">
              <button type="button" onClick={() => void resolve(c.path, 'mine')} aria-label={`Keep mine: ${c.path}`}>
                Keep mine
              </button>
              <button type="button" className="secondary" onClick={() => void resolve(c.path, 'theirs')} aria-label={`Keep theirs: ${c.path}`}>
                Keep theirs
              </button>
              <button type="button" className="secondary" onClick={() => void resolve(c.path, 'both')} aria-label={`Keep both: ${c.path}`}>
                Keep both
              </button>
            </div>
          </li>
        ))}
      </ul>
    </section>
  );
}

export function RestoreBox({ store }: { store: StoreApi<Store> }) {
  const versions = useStore(store, (s) => s.versions);
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
        <input id="restore-path" value={path} onChange={(e) => setPath(e.target.value)} placeholder="Documents/report.odt" />
        <button type="submit">Show versions</button>
      </form>
      {versions && (
        <ul className="versions" data-testid="versions">
          {versions.list.length === 0 && <li className="muted">The storage keeps no version of {versions.path}.</li>}
          {versions.list.map((v) => (
            <li key={v.stamp ?? 'current'}>
              <span>{v.replacedAt ? `Version replaced ${new Date(v.replacedAt).toLocaleString()}` : 'Current copy on the storage'}</span>
              <button type="button" className="secondary" onClick={() => void restore(versions.path, v)}>
                Restore
              </button>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

export function SyncSettings({ store }: { store: StoreApi<Store> }) {
  const excludes = useStore(store, (s): string[] => s.status?.excludes ?? none);
  const limit = useStore(store, (s) => s.status?.bandwidthLimitKBps ?? 0);
  const save = store.getState().saveSettings;
  const [text, setText] = useState<string | null>(null);
  const [kbps, setKbps] = useState<string | null>(null);
  const limitValue = kbps ?? String(limit);
  const valid = /^\d+$/.test(limitValue);
  return (
    <section className="card" aria-labelledby="settings-title">
      <h2 id="settings-title">Sync settings</h2>
      <form
        className="stacked"
        onSubmit={(e) => {
          e.preventDefault();
          if (!valid) return;
          const list = (text ?? excludes.join('\n')).split('\n').map((l) => l.trim()).filter(Boolean);
          void save({ excludes: list, bandwidthLimitKBps: Number(limitValue) }).then(() => {
            setText(null);
            setKbps(null);
          });
        }}
      >
        <label htmlFor="excludes">Never sync (one pattern a line, e.g. /Videos/ or *.iso)</label>
        <textarea id="excludes" rows={3} value={text ?? excludes.join('\n')} onChange={(e) => setText(e.target.value)} />
        <label htmlFor="bwlimit">Bandwidth limit in KB/s (0 for none)</label>
        <input id="bwlimit" inputMode="numeric" value={limitValue} onChange={(e) => setKbps(e.target.value)} aria-invalid={!valid} />
        {!valid && <p className="banner error">Enter a whole number of KB/s.</p>}
        <div className="actions">
          <button type="submit" disabled={!valid}>
            Save
          </button>
        </div>
      </form>
    </section>
  );
}

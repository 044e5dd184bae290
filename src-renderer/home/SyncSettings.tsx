import { useState } from 'react';
import { useStore, type StoreApi } from 'zustand';
import { FeedbackLine } from '../shared/FeedbackLine';
import type { BackupState } from './backup-store';

const none: never[] = [];

export function SyncSettings({ store }: { store: StoreApi<BackupState> }) {
  const excludes = useStore(store, (s): string[] => s.status?.excludes ?? none);
  const limit = useStore(store, (s) => s.status?.bandwidthLimitKBps ?? 0);
  const save = store.getState().saveSettings;
  const [text, setText] = useState<string | null>(null);
  const [kbps, setKbps] = useState<string | null>(null);
  const limitValue = kbps ?? String(limit);
  const valid = /^\d+$/.test(limitValue);
  return (
    <section className="card" aria-labelledby="settings-title">
      <h2 id="settings-title">Backup settings</h2>
      <form
        className="stacked"
        onSubmit={(e) => {
          e.preventDefault();
          if (!valid) return;
          const list = (text ?? excludes.join('\n')).split('\n').map((l) => l.trim()).filter(Boolean);
          void save({ excludes: list, bandwidthLimitKBps: Number(limitValue) }).then((ok) => {
            if (!ok) return;
            setText(null);
            setKbps(null);
          });
        }}
      >
        <label htmlFor="excludes">Never back up (one pattern a line, e.g. /Videos/ or *.iso)</label>
        <textarea id="excludes" rows={3} value={text ?? excludes.join('\n')} onChange={(e) => setText(e.target.value)} />
        <label htmlFor="bwlimit">Bandwidth limit in KB/s (0 for none)</label>
        <input id="bwlimit" inputMode="numeric" value={limitValue} onChange={(e) => setKbps(e.target.value)} aria-invalid={!valid} aria-describedby={valid ? undefined : 'bwlimit-error'} />
        {!valid && (
          <p className="field-error" id="bwlimit-error">
            Enter a whole number of KB/s.
          </p>
        )}
        <div className="actions">
          <button type="submit" disabled={!valid}>
            Save settings
          </button>
        </div>
      </form>
      <FeedbackLine store={store} place="settings" />
    </section>
  );
}

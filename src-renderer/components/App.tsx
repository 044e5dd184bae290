import { useEffect, useState } from 'react';
import { useStore } from 'zustand';
import type { Stores } from '../stores/status-stores';
import { BackupCard } from './BackupCard';
import { HelpdeskPanel } from './HelpdeskPanel';
import { ImageCard } from './ImageCard';
import { ConflictsInbox, RestoreBox, SyncSettings } from './SyncExtras';
import { PreferencesCard } from './PreferencesCard';
import { ImageUpdateCard } from './ImageUpdateCard';

/** A clock that re-renders "2 min ago" texts. */
export function useNow(intervalMs = 15000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), intervalMs);
    return () => clearInterval(t);
  }, [intervalMs]);
  return now;
}

export function App({ stores }: { stores: Stores }) {
  const connected = useStore(stores.agent, (s) => s.connected);
  const error = useStore(stores.agent, (s) => s.error);
  const problems = useStore(stores.agent, (s) => s.problems);
  return (
    <main className="app">
      <header className="app-header">
        <h1>Tabula</h1>
        <span className={`connection ${connected ? 'ok' : 'lost'}`} role="status">
          {connected ? 'Connected' : 'Not connected'}
        </span>
      </header>
      {error && (
        <p className="banner error" role="alert">
          {error.message}
        </p>
      )}
      {problems.map((p) => (
        <p className="banner warning" role="alert" key={p.file + p.message}>
          {p.message}
        </p>
      ))}
      <ImageCard store={stores.image} />
      <ImageUpdateCard store={stores.imageUpdate} />
      <BackupCard store={stores.backup} />
      <ConflictsInbox store={stores.backup} />
      <RestoreBox store={stores.backup} />
      <SyncSettings store={stores.backup} />
      <PreferencesCard store={stores.prefs} />
      <HelpdeskPanel store={stores.helpdesk} />
    </main>
  );
}

export function NoToken() {
  return (
    <main className="app">
      <h1>Tabula</h1>
      <p className="banner warning" role="alert">
        This page needs the address Tabula printed when it started (it ends with #token=…). Run <code>tabula --headless</code> and open the
        address it shows.
      </p>
    </main>
  );
}

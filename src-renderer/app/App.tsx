// The window: the safety line at the top (always visible, also at tray-popup size), then one page per
// concern. The page remembers its tab in localStorage (the address's hash carries the token).
import { useEffect, useState } from 'react';
import { useStore } from 'zustand';
import type { SafetyActionId } from '../../src-main/common/safety-line';
import { HelpdeskPage } from '../helpdesk/HelpdeskPage';
import { HomePage } from '../home/HomePage';
import { PreferencesPage } from '../preferences/PreferencesPage';
import { AgentConnected, notConnectedId, notConnectedReason } from '../shared/connection';
import { imageLabel } from '../shared/format';
import { TabPanel, Tabs } from '../shared/Tabs';
import { SystemPage } from '../system/SystemPage';
import { notifyIfDue } from './notifications';
import { SafetyLine } from './SafetyLine';
import type { Stores } from './stores';

type Page = 'home' | 'system' | 'preferences' | 'helpdesk';
const pages: { id: Page; label: string }[] = [
  { id: 'home', label: 'Home' },
  { id: 'system', label: 'System' },
  { id: 'preferences', label: 'Preferences' },
  { id: 'helpdesk', label: 'Helpdesk' },
];
const TAB_KEY = 'tabula-tab';

function rememberedPage(): Page {
  const saved = localStorage.getItem(TAB_KEY);
  return pages.some((p) => p.id === saved) ? (saved as Page) : 'home';
}

/** Scrolls to and focuses an element once the page that holds it is shown. */
function focusSoon(id: string) {
  requestAnimationFrame(() => {
    const el = document.getElementById(id);
    el?.scrollIntoView({ block: 'start' });
    el?.focus();
  });
}

export function App({ stores }: { stores: Stores }) {
  const [page, setPage] = useState<Page>(rememberedPage);
  const status = useStore(stores.agent, (s) => s.status);
  const connected = useStore(stores.agent, (s) => s.connected);
  const backup = useStore(stores.backup, (s) => s.status);
  const update = useStore(stores.imageUpdate, (s) => s.status);
  const problems = status?.problems ?? [];
  const select = (p: Page) => {
    setPage(p);
    localStorage.setItem(TAB_KEY, p);
  };

  useEffect(() => {
    if (status && backup && update) void notifyIfDue({ ...status, backup, imageUpdate: update });
  }, [status, backup, update]);

  const onAction = (id: SafetyActionId) => {
    const b = stores.backup.getState();
    if (id === 'backup-now') void b.start();
    else if (id === 'resume') void b.resume();
    else if (id === 'review-conflicts' || id === 'review-refusal') {
      select('home');
      focusSoon(id === 'review-conflicts' ? 'conflicts-title' : 'refusal-title');
    } else if (id === 'show-update') {
      select('system');
      focusSoon('update-title');
    }
  };

  return (
    <div className="app">
      <header className="app-header">
        <h1>Tabula</h1>
        {status && (
          <p className="machine" data-testid="image-version">
            {imageLabel(status.image)} · {status.hostname}
          </p>
        )}
      </header>
      <SafetyLine stores={stores} onAction={onAction} />
      {problems.length > 0 && (
        <div className="banner warning" role="alert">
          {problems.map((p) => (
            <p key={p.file + p.message}>{p.message}</p>
          ))}
        </div>
      )}
      <nav aria-label="Tabula">
        <Tabs id="page" label="Tabula pages" tabs={pages} selected={page} onSelect={select} className="tabs page-tabs" />
      </nav>
      <main>
        {!connected && (
          <p id={notConnectedId} className="muted small" data-testid="not-connected">
            {notConnectedReason}
          </p>
        )}
        {/* Every action of the pages asks the agent: a disabled fieldset disables them all at once. */}
        <fieldset className="agent-actions" disabled={!connected} title={connected ? undefined : notConnectedReason}>
          <AgentConnected.Provider value={connected}>
            <TabPanel id="page" tab={page}>
              {page === 'home' && <HomePage stores={stores} />}
              {page === 'system' && <SystemPage stores={stores} />}
              {page === 'preferences' && <PreferencesPage store={stores.prefs} />}
              {page === 'helpdesk' && <HelpdeskPage stores={stores} />}
            </TabPanel>
          </AgentConnected.Provider>
        </fieldset>
      </main>
    </div>
  );
}

export function NoToken() {
  return (
    <div className="app">
      <h1>Tabula</h1>
      <main>
        <p className="banner warning" role="alert">
          This page needs the address Tabula printed when it started (it ends with #token=…). Run <code>tabula --headless</code> and open the
          address it shows.
        </p>
      </main>
    </div>
  );
}

// One vanilla zustand store per feature, built from an injected API client: testable without React
// or Electron. Events are applied through one function per store; after a (re)connect the stores
// refresh from a full snapshot instead of trusting what they had.
import { createStore, type StoreApi } from 'zustand/vanilla';
import type { AgentEvent, AgentStatus, ApiClient } from '../../src-main/common/contract';
import { toErrorInfo, type ErrorInfo } from '../../src-main/common/errors';
import { createBackupStore, type BackupState } from '../home/backup-store';
import { createHelpdeskStore, type HelpdeskState } from '../helpdesk/helpdesk-store';
import { createPrefsStore, type PrefsState } from '../preferences/prefs-store';
import { createImageUpdateStore, type ImageUpdateState } from '../system/image-store';

export interface AgentState {
  /** The last full status (image, problems…); the backup and update parts live in their own stores. */
  status: AgentStatus | null;
  connected: boolean;
  /** Why the last attempt to reach the agent failed (shown while not connected). */
  error: ErrorInfo | null;
}

export interface Stores {
  agent: StoreApi<AgentState>;
  backup: StoreApi<BackupState>;
  prefs: StoreApi<PrefsState>;
  imageUpdate: StoreApi<ImageUpdateState>;
  helpdesk: StoreApi<HelpdeskState>;
  refresh(): Promise<void>;
  dispose(): void;
}

export function createStores(client: ApiClient, opts: { retryMs?: number } = {}): Stores {
  const agent = createStore<AgentState>()(() => ({ status: null, connected: false, error: null }));
  const backup = createBackupStore(client);
  const prefs = createPrefsStore(client);
  const imageUpdate = createImageUpdateStore(client);
  const helpdesk = createHelpdeskStore(client);
  let retry: ReturnType<typeof setTimeout> | null = null;
  let disposed = false;
  // The snapshot and the events travel apart: an event can arrive before the answer to a status call
  // taken before it. So the events that arrive while a snapshot is on its way are kept, and those
  // newer than the snapshot are applied again on top of it; otherwise the older snapshot would win.
  let recent: AgentEvent[] = [];
  let snapshotsPending = 0;

  async function refresh() {
    snapshotsPending++;
    try {
      const s = await client.call('status.get', {});
      agent.setState({ status: s, connected: true, error: null });
      backup.setState({ status: s.backup });
      imageUpdate.setState({ status: s.imageUpdate, asOfEvent: s.lastEventId });
      if (s.reimage) helpdesk.setState({ reimage: s.reimage });
      await prefs.getState().refresh();
      recent.filter((e) => e.id > s.lastEventId).forEach(applyToStores);
    } catch (err) {
      lost(err);
    } finally {
      if (--snapshotsPending === 0) recent = [];
    }
  }
  // The event stream reconnects by itself; a status call on a timer covers a transport without one.
  function lost(err?: unknown) {
    agent.setState({ connected: false, ...(err ? { error: toErrorInfo(err) } : {}) });
    if (retry || disposed) return;
    retry = setTimeout(() => {
      retry = null;
      if (!agent.getState().connected) void refresh();
    }, opts.retryMs ?? 2000);
  }
  const applyToStores = (e: AgentEvent) => {
    [backup, imageUpdate, helpdesk].forEach((s) => s.getState().apply(e));
    prefs.getState().applyEvent(e);
  };
  const apply = (e: AgentEvent) => {
    if (e.type === 'backup-state-changed') agent.setState({ connected: true });
    if (snapshotsPending) recent.push(e);
    applyToStores(e);
  };
  // A reset starts a new numbering (the agent may have restarted): what was kept belongs to the old one.
  const reset = () => {
    recent = [];
    void refresh();
  };
  const unsubscribe = client.subscribe(apply, reset, () => lost());
  return {
    agent,
    backup,
    prefs,
    imageUpdate,
    helpdesk,
    refresh,
    dispose() {
      disposed = true;
      if (retry) clearTimeout(retry);
      unsubscribe();
    },
  };
}

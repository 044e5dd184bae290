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

  async function refresh() {
    try {
      const s = await client.call('status.get', {});
      agent.setState({ status: s, connected: true, error: null });
      backup.setState({ status: s.backup });
      imageUpdate.setState({ status: s.imageUpdate });
      if (s.reimage) helpdesk.setState({ reimage: s.reimage });
      await prefs.getState().refresh();
    } catch (err) {
      lost(err);
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
  const apply = (e: AgentEvent) => {
    if (e.type === 'backup-state-changed') agent.setState({ connected: true });
    [backup, imageUpdate, helpdesk].forEach((s) => s.getState().apply(e));
    prefs.getState().applyEvent(e);
  };
  const unsubscribe = client.subscribe(apply, () => void refresh(), () => lost());
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

// One vanilla zustand store per feature, built from an injected API client: testable without React
// or Electron. Events are applied through one function per store; after a (re)connect the stores
// refresh from a full snapshot instead of trusting what they had.
import { createStore, type StoreApi } from 'zustand/vanilla';
import type { AgentEvent, ApiClient, BackupStatus, ConfigProblem, FileVersion, ImageStatus } from '../../src-main/common/contract';
import { TabulaError, type ErrorInfo } from '../../src-main/common/errors';
import { createPrefsStore, type PrefsState } from './prefs-store';
import { createHelpdeskStore, createImageUpdateStore, type HelpdeskState, type ImageUpdateState } from './image-store';

export interface ImageState {
  image: ImageStatus | null;
  hostname: string;
}

export interface BackupState {
  status: BackupStatus | null;
  /** The last failed action (e.g. starting while paused), shown until the next action. */
  actionError: ErrorInfo | null;
  /** The last action's outcome in words ("Restored ~/essay.txt"), shown until the next action. */
  notice: string | null;
  /** Versions of the file last looked up, newest first. */
  versions: { path: string; list: FileVersion[] } | null;
  start(force?: boolean): Promise<void>;
  cancel(): Promise<void>;
  pause(): Promise<void>;
  resume(): Promise<void>;
  resolve(path: string, keep: 'mine' | 'theirs' | 'both'): Promise<void>;
  saveSettings(s: { excludes?: string[]; bandwidthLimitKBps?: number }): Promise<void>;
  findVersions(path: string): Promise<void>;
  restore(path: string, version: FileVersion): Promise<void>;
  apply(event: AgentEvent): void;
}

export interface AgentState {
  connected: boolean;
  problems: ConfigProblem[];
  error: ErrorInfo | null;
}

export interface Stores {
  agent: StoreApi<AgentState>;
  image: StoreApi<ImageState>;
  backup: StoreApi<BackupState>;
  prefs: StoreApi<PrefsState>;
  imageUpdate: StoreApi<ImageUpdateState>;
  helpdesk: StoreApi<HelpdeskState>;
  refresh(): Promise<void>;
  dispose(): void;
}

const asInfo = (err: unknown): ErrorInfo =>
  err instanceof TabulaError ? err.toInfo() : { code: 'internal', message: String(err), retryable: false };

export function createBackupStore(client: ApiClient): StoreApi<BackupState> {
  return createStore<BackupState>()((set, get) => {
    const act = async (fn: () => Promise<unknown>) => {
      set({ actionError: null, notice: null });
      try {
        await fn();
      } catch (err) {
        set({ actionError: asInfo(err) });
      }
    };
    const withStatus = (p: Promise<BackupStatus>) => p.then((status) => set({ status }));
    return {
      status: null,
      actionError: null,
      notice: null,
      versions: null,
      start: (force = false) => act(() => client.call('backup.start', { force })),
      cancel: () => act(() => client.call('backup.cancel', {})),
      pause: () => act(() => withStatus(client.call('backup.pause', {}))),
      resume: () => act(() => withStatus(client.call('backup.resume', {}))),
      resolve: (path, keep) =>
        act(async () => {
          await client.call('conflicts.resolve', { path, keep });
          set({ notice: `Settled ${path}.` });
        }),
      saveSettings: (settings) =>
        act(async () => {
          await withStatus(client.call('backup.settings', settings));
          set({ notice: 'Settings saved.' });
        }),
      findVersions: (path) => act(async () => set({ versions: { path, list: await client.call('versions.list', { path }) } })),
      restore: (path, version) =>
        act(async () => {
          // A version replaced at T was the current one just before T.
          const at = version.replacedAt ? new Date(Date.parse(version.replacedAt) - 1) : new Date();
          const r = await client.call('versions.restore', { path, at: at.toISOString() });
          set({ notice: `Restored ${path} (${r.restoredTo}).` });
        }),
      apply(event) {
        const status = get().status;
        if (event.type === 'backup-state-changed') set({ status: event.data.status });
        else if (event.type === 'backup-progress' && status) set({ status: { ...status, progress: event.data } });
      },
    };
  });
}

export function createStores(client: ApiClient): Stores {
  const agent = createStore<AgentState>()(() => ({ connected: false, problems: [], error: null }));
  const image = createStore<ImageState>()(() => ({ image: null, hostname: '' }));
  const backup = createBackupStore(client);
  const prefs = createPrefsStore(client);
  const imageUpdate = createImageUpdateStore(client);
  const helpdesk = createHelpdeskStore(client);

  async function refresh() {
    try {
      const s = await client.call('status.get', {});
      agent.setState({ connected: true, problems: s.problems, error: null });
      image.setState({ image: s.image, hostname: s.hostname });
      backup.setState({ status: s.backup });
      imageUpdate.setState({ status: s.imageUpdate });
      await prefs.getState().refresh();
    } catch (err) {
      agent.setState({ connected: false, error: asInfo(err) });
    }
  }
  const apply = (e: AgentEvent) => {
    [backup, imageUpdate, helpdesk].forEach((s) => s.getState().apply(e));
    prefs.getState().applyEvent(e);
  };
  // Lost: "Not connected" with the reason until the stream is back (then a reset refetches).
  const unsubscribe = client.subscribe(apply, () => void refresh(), (error) => agent.setState({ connected: false, error }));
  return { agent, image, backup, prefs, imageUpdate, helpdesk, refresh, dispose: unsubscribe };
}

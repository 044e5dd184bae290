// The home sync's store: the agent's backup status, versions of the file last looked up, and the
// outcome of each action where it was taken (backup, conflicts, restore, settings).
import { createStore, type StoreApi } from 'zustand/vanilla';
import type { AgentEvent, ApiClient, BackupStatus, FileVersion } from '../../src-main/common/contract';
import { createActionRunner, initialActionState, type ActionState } from '../shared/action';

export type Keep = 'mine' | 'theirs' | 'both';

export interface BackupState extends ActionState {
  status: BackupStatus | null;
  /** Versions of the file last looked up, newest first. */
  versions: { path: string; list: FileVersion[] } | null;
  start(force?: boolean): Promise<void>;
  cancel(): Promise<void>;
  pause(): Promise<void>;
  resume(): Promise<void>;
  resolve(path: string, keep: Keep): Promise<void>;
  open(path: string, side: 'this-laptop' | 'storage', reveal: boolean): Promise<void>;
  saveSettings(s: { excludes?: string[]; bandwidthLimitKBps?: number }): Promise<boolean>;
  findVersions(path: string): Promise<void>;
  restore(path: string, version: FileVersion): Promise<void>;
  apply(event: AgentEvent): void;
}

const settled: Record<Keep, string> = { mine: 'kept this laptop’s version', theirs: 'kept the storage’s version', both: 'kept both versions' };

export function createBackupStore(client: ApiClient): StoreApi<BackupState> {
  const store: StoreApi<BackupState> = createStore<BackupState>()((set, get) => {
    const run = createActionRunner<BackupState>({ getState: () => get(), setState: set });
    const withStatus = (p: Promise<BackupStatus>) => p.then((status) => set({ status }));
    return {
      ...initialActionState,
      status: null,
      versions: null,
      start: async (force = false) =>
        void (await run('backup', async () => {
          await client.call('backup.start', { force });
          return force ? 'Syncing anyway, as you asked.' : undefined;
        })),
      cancel: async () => void (await run('backup', async () => void (await client.call('backup.cancel', {})))),
      pause: async () => void (await run('backup', () => withStatus(client.call('backup.pause', {})))),
      resume: async () => void (await run('backup', () => withStatus(client.call('backup.resume', {})))),
      resolve: async (path, keep) =>
        void (await run('conflicts', async () => {
          // The copy's name (unique) is sent; the feedback names the file, as the inbox does.
          const { resolved } = await client.call('conflicts.resolve', { path, keep });
          return `${resolved}: ${settled[keep]}.`;
        })),
      open: async (path, side, reveal) => void (await run('conflicts', async () => void (await client.call('conflicts.open', { path, side, reveal })))),
      saveSettings: (settings) =>
        run('settings', async () => {
          await withStatus(client.call('backup.settings', settings));
          return 'Settings saved.';
        }),
      findVersions: async (path) =>
        void (await run('restore', async () => {
          set({ versions: null });
          set({ versions: { path, list: await client.call('versions.list', { path }) } });
        })),
      restore: async (path, version) =>
        void (await run('restore', async () => {
          // A version replaced at T was the current one just before T.
          const at = version.replacedAt ? new Date(Date.parse(version.replacedAt) - 1) : new Date();
          const r = await client.call('versions.restore', { path, at: at.toISOString() });
          return `Restored ${path} (${r.restoredTo}).`;
        })),
      apply(event) {
        const status = get().status;
        if (event.type === 'backup-state-changed') set({ status: event.data.status });
        else if (event.type === 'backup-progress' && status) set({ status: { ...status, progress: event.data } });
      },
    };
  });
  return store;
}

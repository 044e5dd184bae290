// The Preferences window's store: the saved preferences (with sources and locks), the current state
// of printers, displays and network beside them, and the last apply report. Built from the injected
// API client like the status stores; refreshed from a full snapshot after a (re)connect.
import { createStore, type StoreApi } from 'zustand/vanilla';
import type { AgentEvent, ApiClient } from '../../src-main/common/contract';
import type { ApplyReport, PrefArea, PrefsCurrentState, PrefsView } from '../../src-main/common/contract/prefs';
import { TabulaError, type ErrorInfo } from '../../src-main/common/errors';
import type { DisplayProfile, NetworkProfile } from '../../src-main/common/prefs-schema';

export interface PrefsState {
  view: PrefsView | null;
  current: PrefsCurrentState | null;
  report: ApplyReport | null;
  busy: boolean;
  /** The last failed action, shown until the next one. */
  error: ErrorInfo | null;
  refresh(): Promise<void>;
  set(key: string, value: unknown): Promise<boolean>;
  apply(areas?: PrefArea[], dryRun?: boolean): Promise<void>;
  saveDisplayProfile(profile: DisplayProfile): Promise<boolean>;
  saveNetworkProfile(profile: NetworkProfile, secret?: string): Promise<boolean>;
  applyEvent(event: AgentEvent): void;
}

const asInfo = (err: unknown): ErrorInfo => (err instanceof TabulaError ? err.toInfo() : { code: 'internal', message: String(err), retryable: false });

export function createPrefsStore(client: ApiClient): StoreApi<PrefsState> {
  return createStore<PrefsState>()((set) => {
    /** Runs an action; true when it succeeded. */
    const act = async (fn: () => Promise<unknown>): Promise<boolean> => {
      set({ busy: true, error: null });
      try {
        await fn();
        return true;
      } catch (err) {
        set({ error: asInfo(err) });
        return false;
      } finally {
        set({ busy: false });
      }
    };
    const loadCurrent = async () => set({ current: await client.call('prefs.state', {}) });
    return {
      view: null,
      current: null,
      report: null,
      busy: false,
      error: null,
      async refresh() {
        try {
          const [view, current] = await Promise.all([client.call('prefs.get', {}), client.call('prefs.state', {})]);
          set({ view, current });
        } catch (err) {
          set({ error: asInfo(err) });
        }
      },
      set: (key, value) => act(async () => set({ view: await client.call('prefs.set', { key, value }) })),
      apply: async (areas, dryRun = false) => {
        await act(async () => {
          set({ report: await client.call('prefs.apply', { areas, dryRun }) });
          await loadCurrent();
        });
      },
      saveDisplayProfile: (profile) => act(async () => set({ view: await client.call('prefs.saveDisplayProfile', { profile }) })),
      saveNetworkProfile: (profile, secret) =>
        act(async () => {
          set({ view: await client.call('prefs.saveNetworkProfile', { profile, secret }) });
          await loadCurrent();
        }),
      applyEvent(event) {
        if (event.type === 'prefs-changed') set({ view: event.data });
        if (event.type === 'prefs-applied') {
          set({ report: event.data });
          void loadCurrent().catch(() => undefined);
        }
      },
    };
  });
}

// One vanilla zustand store per feature, built from an injected API client: testable without React
// or Electron. Events are applied through one function per store; after a (re)connect the stores
// refresh from a full snapshot instead of trusting what they had.
import { createStore, type StoreApi } from 'zustand/vanilla';
import type { AgentEvent, ApiClient, BackupStatus, ConfigProblem, ImageStatus } from '../../src-main/common/contract';
import { TabulaError, type ErrorInfo } from '../../src-main/common/errors';
import { createHelpdeskStore, createImageUpdateStore, type HelpdeskState, type ImageUpdateState } from './image-store';

export interface ImageState {
  image: ImageStatus | null;
  hostname: string;
}

export interface BackupState {
  status: BackupStatus | null;
  /** The last failed action (e.g. starting while already running), shown until the next action. */
  actionError: ErrorInfo | null;
  start(): Promise<void>;
  cancel(): Promise<void>;
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
      set({ actionError: null });
      try {
        await fn();
      } catch (err) {
        set({ actionError: asInfo(err) });
      }
    };
    return {
      status: null,
      actionError: null,
      start: () => act(() => client.call('backup.start', {})),
      cancel: () => act(() => client.call('backup.cancel', {})),
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
  const imageUpdate = createImageUpdateStore(client);
  const helpdesk = createHelpdeskStore(client);

  async function refresh() {
    try {
      const s = await client.call('status.get', {});
      agent.setState({ connected: true, problems: s.problems, error: null });
      image.setState({ image: s.image, hostname: s.hostname });
      backup.setState({ status: s.backup });
      imageUpdate.setState({ status: s.imageUpdate });
    } catch (err) {
      agent.setState({ connected: false, error: asInfo(err) });
    }
  }
  const apply = (e: AgentEvent) => [backup, imageUpdate, helpdesk].forEach((s) => s.getState().apply(e));
  const unsubscribe = client.subscribe(apply, () => void refresh());
  return { agent, image, backup, imageUpdate, helpdesk, refresh, dispose: unsubscribe };
}

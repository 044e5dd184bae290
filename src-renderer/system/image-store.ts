// The system updates store, built from the injected API client.
import { createStore, type StoreApi } from 'zustand/vanilla';
import type { AgentEvent, ApiClient } from '../../src-main/common/contract';
import type { ImageUpdateStatus } from '../../src-main/common/contract/image';
import { createActionRunner, initialActionState, type ActionState } from '../shared/action';

export interface ImageUpdateState extends ActionState {
  status: ImageUpdateStatus | null;
  check(): Promise<void>;
  pull(): Promise<void>;
  rollback(): Promise<void>;
  apply(event: AgentEvent): void;
}

export function createImageUpdateStore(client: ApiClient): StoreApi<ImageUpdateState> {
  return createStore<ImageUpdateState>()((set, get) => {
    const run = createActionRunner<ImageUpdateState>({ getState: get, setState: set });
    return {
      ...initialActionState,
      status: null,
      check: async () => void (await run('update', async () => void set({ status: await client.call('image.check', {}) }))),
      pull: async () => void (await run('update', async () => void (await client.call('image.pull', {})))),
      rollback: async () => void (await run('update', async () => void set({ status: await client.call('image.rollback', {}) }))),
      apply(event) {
        const status = get().status;
        if (event.type === 'image-state-changed') set({ status: event.data.status });
        else if (event.type === 'image-progress' && status) set({ status: { ...status, progress: event.data } });
      },
    };
  });
}

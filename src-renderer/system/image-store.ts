// The system updates store, built from the injected API client.
import { createStore, type StoreApi } from 'zustand/vanilla';
import type { AgentEvent, ApiClient } from '../../src-main/common/contract';
import type { ImageUpdateStatus } from '../../src-main/common/contract/image';
import { createActionRunner, initialActionState, type ActionState } from '../shared/action';

export interface ImageUpdateState extends ActionState {
  status: ImageUpdateStatus | null;
  /** The newest event the status shown reflects (see ImageUpdateStatus.asOfEvent). */
  asOfEvent: number;
  check(): Promise<void>;
  pull(): Promise<void>;
  rollback(): Promise<void>;
  apply(event: AgentEvent): void;
}

export function createImageUpdateStore(client: ApiClient): StoreApi<ImageUpdateState> {
  return createStore<ImageUpdateState>()((set, get) => {
    const run = createActionRunner<ImageUpdateState>({ getState: get, setState: set });
    // An action's answer and the events travel apart: one made before an event already shown is older.
    const answer = (s: ImageUpdateStatus) => {
      if (s.asOfEvent === undefined) set({ status: s });
      else if (s.asOfEvent >= get().asOfEvent) set({ status: s, asOfEvent: s.asOfEvent });
    };
    return {
      ...initialActionState,
      status: null,
      asOfEvent: 0,
      check: async () => void (await run('update', async () => answer(await client.call('image.check', {})))),
      pull: async () => void (await run('update', async () => void (await client.call('image.pull', {})))),
      rollback: async () => void (await run('update', async () => answer(await client.call('image.rollback', {})))),
      apply(event) {
        const status = get().status;
        // The stream's order: after an agent's restart its numbering starts again, and goes on from there.
        if (event.type === 'image-state-changed') set({ status: event.data.status, asOfEvent: event.id });
        else if (event.type === 'image-progress' && status) set({ status: { ...status, progress: event.data }, asOfEvent: event.id });
      },
    };
  });
}

// Stores for the image update card and the helpdesk panel, built from the injected API client.
import { createStore, type StoreApi } from 'zustand/vanilla';
import type { AgentEvent, ApiClient } from '../../src-main/common/contract';
import type { ImageUpdateStatus, ReimagePlan, ReimageStatus } from '../../src-main/common/contract/image';
import { TabulaError, type ErrorInfo } from '../../src-main/common/errors';

const asInfo = (err: unknown): ErrorInfo => (err instanceof TabulaError ? err.toInfo() : { code: 'internal', message: String(err), retryable: false });

export interface ImageUpdateState {
  status: ImageUpdateStatus | null;
  actionError: ErrorInfo | null;
  check(): Promise<void>;
  pull(): Promise<void>;
  rollback(): Promise<void>;
  apply(event: AgentEvent): void;
}

export function createImageUpdateStore(client: ApiClient): StoreApi<ImageUpdateState> {
  return createStore<ImageUpdateState>()((set, get) => {
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
      check: () => act(async () => set({ status: await client.call('image.check', {}) })),
      pull: () => act(() => client.call('image.pull', {})),
      rollback: () => act(async () => set({ status: await client.call('image.rollback', {}) })),
      apply(event) {
        const status = get().status;
        if (event.type === 'image-state-changed') set({ status: event.data.status });
        else if (event.type === 'image-progress' && status) set({ status: { ...status, progress: event.data } });
      },
    };
  });
}

export interface HelpdeskState {
  open: boolean;
  plan: ReimagePlan | null;
  reimage: ReimageStatus | null;
  error: ErrorInfo | null;
  diagnosticsFile: string | null;
  toggle(): Promise<void>;
  loadPlan(): Promise<void>;
  start(override: boolean): Promise<void>;
  cancel(): Promise<void>;
  diagnostics(): Promise<void>;
  apply(event: AgentEvent): void;
}

export function createHelpdeskStore(client: ApiClient): StoreApi<HelpdeskState> {
  return createStore<HelpdeskState>()((set, get) => ({
    open: false,
    plan: null,
    reimage: null,
    error: null,
    diagnosticsFile: null,
    async toggle() {
      const open = !get().open;
      set({ open });
      if (open) await get().loadPlan();
    },
    async loadPlan() {
      try {
        set({ plan: await client.call('helpdesk.plan', {}), error: null });
      } catch (err) {
        set({ error: asInfo(err) });
      }
    },
    async start(override) {
      set({ error: null });
      try {
        const count = get().plan?.home.count;
        set({ reimage: await client.call('helpdesk.reimage', override ? { override: true, acknowledgedCount: count ?? 0 } : {}) });
      } catch (err) {
        set({ error: asInfo(err) });
        await get().loadPlan();
      }
    },
    async cancel() {
      set({ reimage: await client.call('helpdesk.cancelReimage', {}) });
    },
    async diagnostics() {
      try {
        set({ diagnosticsFile: (await client.call('helpdesk.diagnostics', {})).file });
      } catch (err) {
        set({ error: asInfo(err) });
      }
    },
    apply(event) {
      if (event.type === 'reimage-changed') set({ reimage: event.data });
      // A finished backup changes what a reimage would lose: look again.
      if (event.type === 'backup-finished' && get().open) void get().loadPlan();
    },
  }));
}

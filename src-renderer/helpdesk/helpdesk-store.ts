// The helpdesk page's store: the reset plan (what would be lost), the reset's progress, and the
// diagnostics bundle. Errors stay where the action was taken until the next action there.
import { createStore, type StoreApi } from 'zustand/vanilla';
import type { AgentEvent, ApiClient } from '../../src-main/common/contract';
import type { ReimagePlan, ReimageStatus } from '../../src-main/common/contract/helpdesk';
import { createActionRunner, initialActionState, type ActionState } from '../shared/action';

export interface HelpdeskState extends ActionState {
  plan: ReimagePlan | null;
  reimage: ReimageStatus | null;
  diagnostics: { file: string; text: string } | null;
  loadPlan(): Promise<void>;
  start(override: boolean): Promise<void>;
  cancel(): Promise<void>;
  exportDiagnostics(): Promise<void>;
  copyDiagnostics(): Promise<void>;
  showDiagnostics(): Promise<void>;
  apply(event: AgentEvent): void;
}

export function createHelpdeskStore(client: ApiClient): StoreApi<HelpdeskState> {
  return createStore<HelpdeskState>()((set, get) => {
    const run = createActionRunner<HelpdeskState>({ getState: get, setState: set });
    const loadPlan = async () =>
      void (await run('plan', async () => {
        const plan = await client.call('helpdesk.plan', {});
        // The reset as the agent has it: a waiting fleet reimage shows in a window opened after it came.
        set({ plan, reimage: plan.reimage });
      }));
    return {
      ...initialActionState,
      plan: null,
      reimage: null,
      diagnostics: null,
      loadPlan,
      async start(override) {
        // A refusal stays on screen (it says why); the plan is looked at again underneath it.
        const ok = await run('reset', async () => {
          const count = get().plan?.home.count;
          set({ reimage: await client.call('helpdesk.reimage', override ? { override: true, acknowledgedCount: count ?? 0 } : {}) });
        });
        if (!ok) {
          const feedback = get().feedback.reset;
          await loadPlan();
          run.put('reset', feedback);
        }
      },
      cancel: async () => void (await run('reset', async () => void set({ reimage: await client.call('helpdesk.cancelReimage', {}) }))),
      exportDiagnostics: async () =>
        void (await run('diagnostics', async () => {
          const d = await client.call('helpdesk.diagnostics', {});
          set({ diagnostics: d });
          return `Diagnostics saved to ${d.file}`;
        })),
      copyDiagnostics: async () =>
        void (await run('diagnostics', async () => {
          const d = get().diagnostics ?? (await client.call('helpdesk.diagnostics', {}));
          set({ diagnostics: d });
          await navigator.clipboard.writeText(d.text);
          return 'Diagnostics copied: paste them into the ticket.';
        })),
      showDiagnostics: async () =>
        void (await run('diagnostics', async () => {
          const r = await client.call('helpdesk.showDiagnostics', {});
          return `Opened ${r.opened} in the file manager.`;
        })),
      apply(event) {
        if (event.type === 'reimage-changed') set({ reimage: event.data });
        // A finished backup changes what a reimage would lose: look again.
        if (event.type === 'backup-finished' && get().plan) void loadPlan();
      },
    };
  });
}

// The Preferences page's store: the saved preferences (with sources and locks), the current state
// of printers, displays and network beside them, and the last apply report. Built from the injected
// API client like the other stores; refreshed from a full snapshot after a (re)connect. Each tab's
// actions report in that tab ("printers", "displays", "network").
import { createStore, type StoreApi } from 'zustand/vanilla';
import type { AgentEvent, ApiClient } from '../../src-main/common/contract';
import type { ApplyReport, PrefArea, PrefsCurrentState, PrefsView } from '../../src-main/common/contract/prefs';
import type { DisplayProfile, NetworkProfile } from '../../src-main/common/prefs-schema';
import { createActionRunner, errorFeedback, initialActionState, type ActionState } from '../shared/action';
import { plural } from '../shared/format';

export interface PrefsState extends ActionState {
  view: PrefsView | null;
  current: PrefsCurrentState | null;
  report: ApplyReport | null;
  refresh(): Promise<void>;
  set(area: PrefArea, key: string, value: unknown): Promise<boolean>;
  apply(area: PrefArea): Promise<void>;
  saveDisplayProfile(profile: DisplayProfile): Promise<boolean>;
  saveNetworkProfile(profile: NetworkProfile, secret?: string): Promise<boolean>;
  applyEvent(event: AgentEvent): void;
}

const nothingSaved: Record<PrefArea, string> = {
  printers: 'Nothing to apply: no printer is saved yet. Choose one and press Save first.',
  displays: 'Nothing to apply: no layout is saved for these monitors yet.',
  network: 'Nothing to apply: no network is saved yet.',
};

/** One sentence for the result of "Apply now" in one area; the per-item list is shown below it. */
export function applySummary(report: ApplyReport, area: PrefArea, currentProblem: string | null): { ok: boolean; text: string } {
  const items = report.items.filter((i) => i.area === area);
  if (!items.length) return currentProblem ? { ok: false, text: `Not applied: ${currentProblem}` } : { ok: true, text: nothingSaved[area] };
  const failed = items.filter((i) => i.status === 'failed' || i.status === 'skipped').length;
  const applied = items.filter((i) => i.status === 'applied').length;
  if (failed) return { ok: false, text: `${plural(failed, 'item was', 'items were')} not applied${applied ? ` (${applied} applied)` : ''}: see below.` };
  return { ok: true, text: applied ? `Applied ${plural(applied, 'item')}.` : 'Already as saved: nothing needed changing.' };
}

export function createPrefsStore(client: ApiClient): StoreApi<PrefsState> {
  return createStore<PrefsState>()((set, get) => {
    const run = createActionRunner<PrefsState>({ getState: get, setState: set });
    const loadCurrent = async () => set({ current: await client.call('prefs.state', {}) });
    return {
      ...initialActionState,
      view: null,
      current: null,
      report: null,
      async refresh() {
        try {
          const [view, current] = await Promise.all([client.call('prefs.get', {}), client.call('prefs.state', {})]);
          set({ view, current });
        } catch (err) {
          run.put('prefs', errorFeedback(err));
        }
      },
      set: (area, key, value) =>
        run(area, async () => {
          set({ view: await client.call('prefs.set', { key, value }) });
          return 'Saved.';
        }),
      async apply(area) {
        let summary: { ok: boolean; text: string } | null = null;
        await run(area, async () => {
          const report = await client.call('prefs.apply', { areas: [area] });
          set({ report });
          await loadCurrent();
          summary = applySummary(report, area, get().current?.[area].problem ?? null);
          return summary.ok ? summary.text : undefined;
        });
        // Something not applied is said in words, in the tab (the per-item list is below it).
        const s = summary as { ok: boolean; text: string } | null;
        if (s && !s.ok) run.put(area, { kind: 'error', text: s.text });
      },
      saveDisplayProfile: (profile) =>
        run('displays', async () => {
          set({ view: await client.call('prefs.saveDisplayProfile', { profile }) });
          return `Layout “${profile.name}” saved for these monitors.`;
        }),
      saveNetworkProfile: (profile, secret) =>
        run('network', async () => {
          set({ view: await client.call('prefs.saveNetworkProfile', { profile, secret }) });
          await loadCurrent();
          return `Network “${profile.name}” saved.`;
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

// The window's stores without React or a browser: an injected client stands in for the agent (an
// in-memory double of the contract's client, named as such), so the tests read what the person would
// see in the feedback line after each action.
import { describe, expect, it } from 'vitest';
import type { AgentEvent, AgentStatus, ApiClient, MethodName } from '../../src-main/common/contract';
import { createStores } from '../../src-renderer/app/stores';
import { agentStatus, idleImage } from '../support/agent-status';
import type { ApplyReport, MonitorState } from '../../src-main/common/contract/prefs';
import type { ImageUpdateStatus } from '../../src-main/common/contract/image';
import { TabulaError } from '../../src-main/common/errors';
import { createHelpdeskStore } from '../../src-renderer/helpdesk/helpdesk-store';
import { applySummary } from '../../src-renderer/preferences/prefs-store';
import { profileFromMonitors } from '../../src-main/common/display-profile';
import { createActionRunner, initialActionState, type ActionState } from '../../src-renderer/shared/action';
import { createStore } from 'zustand/vanilla';

function inMemoryClient(handlers: Partial<Record<MethodName, (args: unknown) => unknown>>): ApiClient {
  return {
    async call(method, args) {
      const h = handlers[method];
      if (!h) throw new Error(`unexpected call ${method}`);
      return (await h(args)) as never;
    },
    subscribe: () => () => undefined,
  };
}

describe('action runner', () => {
  it('keeps the outcome under the place it was taken: a sentence, or the typed error with its details', async () => {
    const store = createStore<ActionState>()(() => ({ ...initialActionState }));
    const run = createActionRunner(store);
    expect(await run('settings', async () => 'Settings saved.')).toBe(true);
    expect(store.getState().feedback.settings).toEqual({ kind: 'ok', text: 'Settings saved.' });
    expect(await run('backup', async () => Promise.reject(new TabulaError('not-running', 'Sync is paused. Resume it first.', { details: ['a'] })))).toBe(false);
    expect(store.getState().feedback).toEqual({
      settings: { kind: 'ok', text: 'Settings saved.' },
      backup: { kind: 'error', text: 'Sync is paused. Resume it first.', code: 'not-running', details: ['a'] },
    });
    expect(store.getState().busy).toBeNull();
    await run('backup', async () => Promise.reject(new Error('boom')));
    expect(store.getState().feedback.backup?.text).toBe('Something went wrong inside Tabula: boom');
  });
});

describe('helpdesk store', () => {
  it('a refused reset stays on screen while the plan is looked at again', async () => {
    let plans = 0;
    const store = createHelpdeskStore(
      inMemoryClient({
        'helpdesk.plan': () => (plans++, { home: { count: 1, paths: ['~/x'], queued: 0, unknownReason: null } }),
        'helpdesk.reimage': () => Promise.reject(new TabulaError('reimage-refused', 'Reset refused: 1 file in the home is not on the storage yet.')),
      }),
    );
    await store.getState().loadPlan();
    await store.getState().start(false);
    expect(plans).toBe(2);
    expect(store.getState().feedback.reset).toMatchObject({ kind: 'error', text: 'Reset refused: 1 file in the home is not on the storage yet.' });
  });
});

describe('preferences', () => {
  const report = (items: ApplyReport['items']): ApplyReport => ({ dryRun: false, items }) as ApplyReport;
  it('"Apply now" always answers: nothing saved, not applied (with the reason), applied', () => {
    expect(applySummary(report([]), 'printers', null)).toEqual({ ok: true, text: 'Nothing to apply: no printer is saved yet. Choose one and press Save first.' });
    expect(applySummary(report([]), 'displays', 'No X display is available.')).toEqual({ ok: false, text: 'Not applied: No X display is available.' });
    const item = (status: string) => ({ area: 'printers', item: 'Default printer', action: 'x', status }) as ApplyReport['items'][number];
    expect(applySummary(report([item('failed'), item('applied')]), 'printers', null)).toEqual({ ok: false, text: '1 item was not applied (1 applied): see below.' });
    expect(applySummary(report([item('applied')]), 'printers', null)).toEqual({ ok: true, text: 'Applied 1 item.' });
    expect(applySummary(report([item('unchanged')]), 'printers', null).text).toBe('Already as saved: nothing needed changing.');
  });

  it('profileFromMonitors: the saved layout for exactly these monitors, else what they show now', () => {
    const m = (monitor: string, x: number): MonitorState =>
      ({ connector: monitor, monitor, label: monitor, enabled: true, width: 1920, height: 1080, refresh: 60, x, y: 0, rotation: 'normal', primary: x === 0, modes: [] }) as MonitorState;
    const now = profileFromMonitors([m('a', 0), m('b', 1920)], []);
    expect(now.name).toBe('2 monitors');
    expect(now.outputs.map((o) => o.x)).toEqual([0, 1920]);
    const saved = { name: 'Desk', outputs: [{ ...now.outputs[1]!, x: 0, primary: true }, { ...now.outputs[0]!, x: 1920, primary: false }] };
    const again = profileFromMonitors([m('a', 0), m('b', 1920)], [saved]);
    expect(again.name).toBe('Desk');
    expect(again.outputs.map((o) => [o.monitor, o.x])).toEqual([['a', 1920], ['b', 0]]);
    expect(profileFromMonitors([], [saved]).outputs).toEqual([]);
  });
});

describe('snapshot and events', () => {
  it('an event that overtakes the answer to an older status call is not undone by it (the update panel showed "unknown")', async () => {
    let onEvent: (e: AgentEvent) => void = () => undefined;
    let onReset: () => void = () => undefined;
    let answer: (s: AgentStatus) => void = () => undefined;
    const client: ApiClient = {
      call: (async (method: MethodName) => {
        if (method === 'status.get') return new Promise((r) => (answer = r));
        if (method === 'prefs.get' || method === 'prefs.state') return null;
        throw new Error(`unexpected call ${method}`);
      }) as ApiClient['call'],
      subscribe: (ev, reset) => ((onEvent = ev), (onReset = reset ?? (() => undefined)), () => undefined),
    };
    const settled = () => new Promise((r) => setTimeout(r, 20)); // the store's calls answer at once but for status.get
    const stores = createStores(client);
    onReset(); // the stream opened: the window asks for the whole status
    const booted = { ...idleImage, booted: { version: '1.0', checksum: null } };
    // The agent read the installed versions just after it took the snapshot (event 8 > 7)…
    onEvent({ id: 8, at: '', type: 'image-state-changed', data: { from: 'idle', to: 'idle', reason: booted.reason, durationMs: 0, status: booted } } as AgentEvent);
    // …and the snapshot's answer arrives after the event.
    answer({ ...agentStatus({}, [], { ...idleImage, booted: null }), lastEventId: 7 });
    await settled();
    expect(stores.agent.getState().connected).toBe(true);
    expect(stores.imageUpdate.getState().status?.booted?.version).toBe('1.0');

    // A snapshot taken after an event wins over it.
    onReset();
    answer({ ...agentStatus({}, [], { ...idleImage, booted: { version: '2.0', checksum: null } }), lastEventId: 9 });
    await settled();
    expect(stores.imageUpdate.getState().status?.booted?.version).toBe('2.0');
    stores.dispose();
  });

  it('"Check now" answered after the pull it started said so: the panel shows the download, not the offer', async () => {
    let onEvent: (e: AgentEvent) => void = () => undefined;
    let answer: (s: ImageUpdateStatus) => void = () => undefined;
    const client: ApiClient = {
      call: (async (method: MethodName) => {
        if (method === 'image.check') return new Promise((r) => (answer = r));
        if (method === 'status.get') return { ...agentStatus({}), lastEventId: 4 };
        if (method === 'prefs.get' || method === 'prefs.state') return null;
        throw new Error(`unexpected call ${method}`);
      }) as ApiClient['call'],
      subscribe: (ev) => ((onEvent = ev), () => undefined),
    };
    const stores = createStores(client);
    await stores.refresh();
    const offer = { version: '2026.12.1', checksum: null };
    const checking = stores.imageUpdate.getState().check();
    // The check found an offer (event 5); the pull it started began (event 6); then the check's answer,
    // made at event 5, arrives.
    const offered: ImageUpdateStatus = { ...idleImage, state: 'idle', available: offer, reason: 'Version 2026.12.1 is available.' };
    const downloading: ImageUpdateStatus = { ...offered, state: 'downloading', reason: 'Downloading version 2026.12.1…' };
    onEvent({ id: 5, at: '', type: 'image-state-changed', data: { from: 'checking', to: 'idle', reason: offered.reason, durationMs: 0, status: offered } } as AgentEvent);
    onEvent({ id: 6, at: '', type: 'image-state-changed', data: { from: 'idle', to: 'downloading', reason: downloading.reason, durationMs: 0, status: downloading } } as AgentEvent);
    answer({ ...offered, asOfEvent: 5 });
    await checking;
    expect(stores.imageUpdate.getState().status?.state).toBe('downloading');

    // An answer made after the newest event shown is the newest: it stands.
    const again = stores.imageUpdate.getState().check();
    answer({ ...downloading, lastCheckAt: '2026-12-03T10:00:00Z', asOfEvent: 6 });
    await again;
    expect(stores.imageUpdate.getState().status?.lastCheckAt).toBe('2026-12-03T10:00:00Z');
    stores.dispose();
  });
});

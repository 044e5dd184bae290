// The runtime's lifecycle parts, once, on the FAKE clock (time moves only when the test says so):
// state transitions with reason and duration, exclusive runs that queue, the request journal.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createJournal } from '../../src-main/core/runtime/journal';
import { createExclusive } from '../../src-main/core/runtime/schedule';
import { transition, type Stateful } from '../../src-main/core/runtime/state-machine';
import { createFakeClock } from '../fixtures/fake-clock';

type S = Stateful<'idle' | 'running' | 'failed'> & { progress: number | null };

describe('state machine', () => {
  it('records from → to, the reason and how long the state lasted; the same state keeps its start', async () => {
    const clock = createFakeClock();
    let s: S = { state: 'idle', reason: 'All synced.', since: new Date(clock.now()).toISOString(), progress: null };
    await clock.advance(90_000);
    const r = transition(s, 'running', 'Syncing…', clock.now(), { progress: 0 });
    expect(r.change).toEqual({ from: 'idle', to: 'running', reason: 'Syncing…', durationMs: 90_000 });
    expect(r.status).toMatchObject({ state: 'running', progress: 0, since: new Date(clock.now()).toISOString() });
    s = r.status;
    await clock.advance(5_000);
    const again = transition(s, 'running', 'Syncing… 40%', clock.now());
    expect(again.status.since).toBe(s.since);
    expect(again.change.durationMs).toBe(5_000);
  });

  it('refuses a state without a reason', () => {
    const s: S = { state: 'idle', reason: 'ok', since: new Date(0).toISOString(), progress: null };
    expect(() => transition(s, 'failed', ' ', 1000)).toThrow(/without a reason/);
  });
});

describe('exclusive runs', () => {
  it('queue in order instead of refusing; a failing run does not block the next', async () => {
    const q = createExclusive();
    const order: string[] = [];
    let release!: () => void;
    const first = q.run(() => new Promise<void>((r) => (release = r)).then(() => void order.push('first')));
    const second = q.run(async () => {
      order.push('second');
      throw new Error('failed');
    });
    const third = q.run(async () => void order.push('third'));
    expect(q.busy()).toBe(true);
    await new Promise((r) => setImmediate(r));
    expect(order).toEqual([]);
    release();
    await first;
    await expect(second).rejects.toThrow('failed');
    await third;
    expect(order).toEqual(['first', 'second', 'third']);
    await q.whenIdle();
    expect(q.busy()).toBe(false);
  });
});

describe('request journal', () => {
  const dirs: string[] = [];
  afterEach(() => dirs.splice(0).forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

  it('keeps requests on disk until a completed run answers them; cancelled and interrupted runs leave them', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-journal-'));
    dirs.push(dir);
    const file = path.join(dir, 'queue.json');
    const clock = createFakeClock();
    const now = () => new Date(clock.now());
    const j = createJournal({ file, now });
    j.add('manual');
    await clock.advance(1000);
    const started = j.mark();
    for (const end of ['cancelled', 'interrupted', 'failed-will-retry'] as const) {
      j.finished(started, end);
      expect(createJournal({ file, now }).requests().map((r) => r.reason)).toEqual(['manual']);
    }
    j.add('change'); // arrives during the run, in the same millisecond as it started
    j.finished(started, 'completed');
    expect(createJournal({ file, now }).requests().map((r) => r.reason)).toEqual(['change']);
  });

  it('a queue written before requests had ids is read in its order, and a completed run answers what it held', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-journal-'));
    dirs.push(dir);
    const file = path.join(dir, 'queue.json');
    const now = () => new Date(Date.parse('2026-01-05T08:00:00Z'));
    const at = now().toISOString();
    fs.writeFileSync(file, JSON.stringify({ paused: false, requests: [{ at, reason: 'manual' }, { at, reason: 'change' }] }));
    const j = createJournal({ file, now });
    const started = j.mark();
    j.add('resume');
    j.finished(started, 'completed');
    expect(createJournal({ file, now }).requests().map((r) => r.reason)).toEqual(['resume']);
  });

  it('a truncated queue.json still holds the offline "Back up now": it comes back from the last saved copy, and the damage is reported', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-journal-'));
    dirs.push(dir);
    const file = path.join(dir, 'queue.json');
    const now = () => new Date(Date.parse('2026-01-05T08:00:00Z'));
    createJournal({ file, now }).add('manual');
    fs.truncateSync(file, 20); // a disk fault, a crash of something else writing there
    const problems: string[] = [];
    const j = createJournal({ file, now, reportProblem: (m) => problems.push(m) });
    expect(j.requests().map((r) => r.reason)).toEqual(['manual']);
    expect(problems).toEqual([expect.stringMatching(/queue\.json is not valid JSON .*using the last good copy \(the damaged file was kept as queue\.json\.damaged-\d+\)/)]);
  });
});

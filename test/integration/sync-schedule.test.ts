// The sync's timers on the runtime Schedule, driven by the FAKE clock (time moves only when the test
// says so) while the runs themselves are real (rsync into a local storage folder): an offline backup
// is retried by itself after a growing back-off and lands once the storage is back; "Back up now"
// during a run is queued, not dropped; stopping the sync leaves no timer behind.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BackupRun } from '../../src-main/common/contract';
import { createEventLog } from '../../src-main/common/event-log';
import { loadConfig } from '../../src-main/core/config';
import { resolvePaths } from '../../src-main/core/paths';
import { createSyncService, type SyncService } from '../../src-main/core/sync/service';
import { createFakeClock, type FakeClock } from '../fixtures/fake-clock';
import { createSandbox, type AgentSandbox } from '../fixtures/headless-agent';

let sb: AgentSandbox;
let clock: FakeClock;
let service: SyncService | null = null;
const storage = () => path.join(sb.dir, 'nas/ann');

beforeEach(() => {
  sb = createSandbox();
  clock = createFakeClock();
  sb.writeUserConfig({ storage: { url: storage() }, backup: { retryMinSeconds: 30, retryMaxSeconds: 600, intervalMinutes: 15, watchHome: true, debounceSeconds: 5 } });
});
afterEach(async () => {
  service?.dispose();
  service?.cancel();
  await service?.whenIdle();
  service = null;
  await sb.dispose();
});

function start() {
  const paths = resolvePaths(sb.env);
  const events = createEventLog();
  const finished: BackupRun[] = [];
  events.subscribe((e) => e.type === 'backup-finished' && finished.push(e.data));
  service = createSyncService({ paths, getConfig: () => loadConfig(paths).config, events, clock, now: () => new Date(clock.now()) });
  return { service, events, finished };
}

/** At the first run's start: a new file and "Back up now" again (`first` runs before, e.g. the clock moved on). */
function askAgainWhenRunning(service: ReturnType<typeof start>['service'], events: ReturnType<typeof start>['events'], first = () => {}) {
  let asked = false;
  events.subscribe((e) => {
    if (e.type !== 'backup-state-changed' || e.data.to !== 'running' || asked) return;
    asked = true;
    first();
    fs.writeFileSync(path.join(sb.home, 'Documents/late.txt'), 'written during the run\n');
    expect(service.start().queued).toBe(true);
  });
}

const waitRuns = (finished: BackupRun[], n: number) => expect.poll(() => finished.length, { timeout: 20_000, interval: 50 }).toBe(n);
const inSeconds = (iso: string | null) => (Date.parse(iso!) - clock.now()) / 1000;

describe('sync on the runtime schedule (fake clock)', () => {
  it('an offline backup is retried by itself after a jittered back-off that doubles, and lands once the storage is back', async () => {
    const { service, finished } = start();
    service.startAutomatic();
    service.start();
    await waitRuns(finished, 1);
    expect(finished[0]!.outcome).toBe('failed');
    expect(service.status().state).toBe('offline');
    // First retry: 30 s, jittered down to no less than half.
    const first = inSeconds(service.status().nextAttemptAt);
    expect(first).toBeGreaterThanOrEqual(15);
    expect(first).toBeLessThanOrEqual(30);

    await clock.advance(first * 1000);
    await waitRuns(finished, 2);
    const second = inSeconds(service.status().nextAttemptAt);
    expect(second).toBeGreaterThanOrEqual(30);
    expect(second).toBeLessThanOrEqual(60);

    fs.mkdirSync(storage(), { recursive: true }); // the NAS is mounted again
    await clock.advance(second * 1000);
    await waitRuns(finished, 3);
    expect(finished[2]!.outcome).toBe('success');
    expect(fs.readFileSync(path.join(storage(), 'Documents/notes.txt'), 'utf8')).toBe('Remember the milk.\n');
    // Back on the interval, not on the back-off.
    expect(inSeconds(service.status().nextAttemptAt)).toBe(15 * 60);
  });

  it('"Back up now" during a run is queued and runs once that run ends, with what changed meanwhile', async () => {
    fs.mkdirSync(storage(), { recursive: true });
    const { service, events, finished } = start();
    // While the first run is under way: a second later, a new file and "Back up now" again.
    askAgainWhenRunning(service, events, () => void clock.advance(1000));
    service.start();
    await waitRuns(finished, 2);
    expect(finished.map((r) => r.outcome)).toEqual(['success', 'success']);
    expect(fs.readFileSync(path.join(storage(), 'Documents/late.txt'), 'utf8')).toBe('written during the run\n');
    await service.whenIdle();
    expect(service.status().state).toBe('idle');
  });

  it('"Back up now" in the very millisecond a run started (the clock has not moved) is not taken as answered by that run: a second run follows', async () => {
    fs.mkdirSync(storage(), { recursive: true });
    const { service, events, finished } = start();
    askAgainWhenRunning(service, events); // the clock not moved since the run started
    service.start();
    await waitRuns(finished, 2);
    expect(fs.readFileSync(path.join(storage(), 'Documents/late.txt'), 'utf8')).toBe('written during the run\n');
    await service.whenIdle();
    expect(finished.length).toBe(2);
  });

  it('stopping leaves no timer: not the retry, not the debounce, not the config check, also when a run was under way', async () => {
    const { service, finished } = start();
    service.startAutomatic();
    fs.writeFileSync(path.join(sb.home, 'Documents/new.txt'), 'x\n'); // wakes the watcher: debounce and recount timers
    service.start();
    await waitRuns(finished, 1); // offline: the retry is armed
    expect(clock.pending()).toBeGreaterThan(1);
    fs.mkdirSync(storage(), { recursive: true });
    await clock.advance(30_000); // the retry starts a run…
    service.dispose(); // …and the sync stops while it runs
    await service.whenIdle();
    expect(clock.pending()).toBe(0);
    await clock.advance(3600_000);
    expect(clock.pending()).toBe(0);
    expect(finished.length).toBeLessThanOrEqual(2);
  });
});

// The reset countdown on the runtime's clock, driven by the FAKE clock (seconds pass only when the test
// says so). The image and home-safety ports are FAKES that record what was asked: the real reset
// (tabula-helper, rsync-tree) is in test/integration/image-agent.test.ts.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import type { ImageUpdateStatus } from '../../src-main/common/contract/image';
import { createEventLog } from '../../src-main/common/event-log';
import { createHelpdeskService } from '../../src-main/core/helpdesk/helpdesk-service';
import { resolvePaths } from '../../src-main/core/paths';
import { createFakeClock } from '../fixtures/fake-clock';

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

function setup() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-countdown-'));
  dirs.push(dir);
  const clock = createFakeClock();
  const resets: number[] = [];
  const fakeImage = {
    status: () => ({ backend: 'rsync-tree', available: null, booted: { version: '1.0', checksum: null } }) as unknown as ImageUpdateStatus,
    reimage: async () => (resets.push(clock.now()), fakeImage.status()),
  };
  const helpdesk = createHelpdeskService({
    paths: resolvePaths({ HOME: path.join(dir, 'home'), XDG_STATE_HOME: path.join(dir, 'state'), TABULA_ROOT: dir }),
    events: createEventLog(100),
    image: fakeImage,
    homeSafety: { unsyncedChanges: async () => ({ count: 0, paths: [], queued: 0, unknownReason: null }) },
    identity: () => ({ hostname: 'ws-1', machineId: null, primaryMac: null, machineClass: 'standard' }),
    lastBackupAt: () => null,
    countdownSeconds: () => 30,
    diagnostics: () => ({}),
    clock,
  });
  return { clock, resets, helpdesk };
}

it('the reset starts when the countdown ends, not a second before', async () => {
  const { clock, resets, helpdesk } = setup();
  const t0 = clock.now();
  const s = await helpdesk.reimage({});
  expect(s).toMatchObject({ state: 'countdown', startsAt: new Date(t0 + 30_000).toISOString() });
  await clock.advance(29_000);
  expect(resets).toEqual([]);
  await clock.advance(1_000);
  expect(resets).toEqual([t0 + 30_000]);
  expect(helpdesk.status().state).toBe('done');
  expect(clock.pending()).toBe(0);
});

it('a cancelled countdown, and one under way when the agent stops, leave no timer and reset nothing', async () => {
  const a = setup();
  await a.helpdesk.reimage({});
  expect(a.helpdesk.cancel().state).toBe('cancelled');
  expect(a.clock.pending()).toBe(0);
  const b = setup();
  await b.helpdesk.reimage({});
  b.helpdesk.stop();
  expect(b.clock.pending()).toBe(0);
  await b.clock.advance(3600_000);
  expect([...a.resets, ...b.resets]).toEqual([]);
});

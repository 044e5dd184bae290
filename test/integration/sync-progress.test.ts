// The progress a window shows while files go up: its percent only ever moves forward within a phase
// (real rsync; a file's own line must not send the bar back to 0 between rsync's progress lines).
import crypto from 'node:crypto';
import { afterEach, beforeEach, expect, it } from 'vitest';
import type { SyncProgress } from '../../src-main/core/sync/engine';
import { createWorld, type World } from '../fixtures/laptops';

let w: World;
beforeEach(() => {
  w = createWorld();
});
afterEach(() => w.dispose());

it('the percent of a push never goes back while files are sent, and reaches past 0', { timeout: 90_000 }, async () => {
  const a = w.laptop('a');
  for (let i = 0; i < 12; i++) a.write(`Videos/part${String(i).padStart(2, '0')}.bin`, crypto.randomBytes(96 << 10));
  const seen: SyncProgress[] = [];
  // 2 MiB/s: rsync's progress lines come between the files' own lines.
  await a.sync({ bandwidthLimitKBps: 2048, onProgress: (p) => void (p.phase === 'pushing' && seen.push({ ...p })) });
  const percents = seen.map((p) => p.percent);
  expect(Math.max(...percents)).toBeGreaterThan(0);
  for (let i = 1; i < percents.length; i++) expect(percents[i], `event ${i} of ${percents.join(',')}`).toBeGreaterThanOrEqual(percents[i - 1]!);
});

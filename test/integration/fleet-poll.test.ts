// Fleet command polling against a real HTTP fleet server on 127.0.0.1 that answers when the test
// says so, on a fake clock (polls are minutes apart): a poll under way when the feature stops
// must not start the timer again.
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { createEventLog } from '../../src-main/common/event-log';
import { loadConfig } from '../../src-main/core/config';
import { createFleetCommands } from '../../src-main/core/fleet/commands';
import { resolvePaths } from '../../src-main/core/paths';
import { createFakeClock } from '../fixtures/fake-clock';

const cleanup: (() => void)[] = [];
afterEach(() => cleanup.splice(0).forEach((f) => f()));

async function until(cond: () => boolean, what: string) {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 25));
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}

/** A fleet server on 127.0.0.1 that holds every request until the test answers it. */
async function setup() {
  const held: http.ServerResponse[] = [];
  const server = http.createServer((_req, res) => held.push(res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanup.push(() => server.close());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-fleet-poll-'));
  cleanup.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  const paths = resolvePaths({ HOME: path.join(dir, 'home'), XDG_STATE_HOME: path.join(dir, 'state'), TABULA_ROOT: dir });
  const base = loadConfig(paths, { systemOnly: true }).config;
  const config = { ...base, fleet: { ...base.fleet, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, commandPollMinutes: 10 } };
  const clock = createFakeClock();
  const fleet = createFleetCommands({
    paths,
    getSystemConfig: () => config,
    identity: () => ({ hostname: 'ws-1', machineId: 'a'.repeat(32), primaryMac: null, machineClass: 'standard' }),
    events: createEventLog(100),
    clock,
    actions: { pull: async () => 'pulled', diagnostics: async () => 'written', reimage: async () => 'reset' },
  });
  cleanup.push(() => fleet.stop());
  return { held, clock, fleet };
}

it('a poll under way when fleet polling stops does not start the timer again', async () => {
  const { held, clock, fleet } = await setup();

  fleet.start();
  expect(clock.pending()).toBe(1);
  await clock.advance(10 * 60_000);
  await until(() => held.length === 1, 'the poll to reach the fleet server');
  fleet.stop();
  held[0]!.writeHead(404).end(); // no command for this machine
  await until(() => held[0]!.writableFinished, 'the answer');
  await new Promise((r) => setTimeout(r, 200)); // the poll's promise settles
  expect(clock.pending()).toBe(0);
  await clock.advance(60 * 60_000);
  expect(held).toHaveLength(1); // and no poll after the stop
});

it('a poll asked for while the timer’s poll runs waits its turn instead of asking the server twice at once', async () => {
  const { held, clock, fleet } = await setup();
  fleet.start();
  await clock.advance(10 * 60_000);
  await until(() => held.length === 1, 'the timer’s poll');
  let asked: unknown = 'pending';
  const manual = fleet.poll().then((r) => (asked = r));
  await new Promise((r) => setTimeout(r, 300));
  expect(held).toHaveLength(1); // the second poll has not gone out yet
  held[0]!.writeHead(404).end();
  await until(() => held.length === 2, 'the queued poll');
  expect(asked).toBe('pending');
  held[1]!.writeHead(404).end();
  await manual;
  expect(asked).toBeNull(); // no command for this machine
  expect(clock.pending()).toBe(1); // and the timer goes on
});

it('a fleet server that fails is asked again later (backed off, jittered), never given up on', async () => {
  const { held, clock, fleet } = await setup();
  fleet.start();
  await clock.advance(10 * 60_000);
  await until(() => held.length === 1, 'the first poll');
  held[0]!.writeHead(500).end();
  await until(() => held[0]!.writableFinished, 'the answer');
  await new Promise((r) => setTimeout(r, 200));
  expect(clock.pending()).toBe(1);
  await clock.advance(10 * 60_000); // jittered back-off: between 5 and 10 minutes after a first failure
  await until(() => held.length === 2, 'the retry');
});

// One contract suite, run against every transport: in-process, HTTP + SSE, and the Electron IPC
// adapter driven through an in-memory IPC pair that copies values like Electron's structured clone.
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBridgeClient, createHttpClient, createInProcessClient, createPreloadBridge } from '../../src-main/common/clients';
import type { AgentEvent, ApiClient } from '../../src-main/common/contract';
import { TabulaError } from '../../src-main/common/errors';
import { createAgent, type Agent } from '../../src-main/core/agent';
import { startHttpServer, type HeadlessServer } from '../../src-main/core/http-server';
import { serveIpc, type IpcMainEventLike, type WebContentsLike } from '../../src-main/core/ipc-adapter';
import { resolvePaths } from '../../src-main/core/paths';
import { createSandbox, type AgentSandbox } from '../fixtures/headless-agent';

/** In-memory stand-in for Electron's ipcMain/ipcRenderer pair (Electron itself cannot run here). */
function createFakeIpcPair() {
  const handlers = new Map<string, (e: IpcMainEventLike, ...a: unknown[]) => unknown>();
  const rendererSide = new EventEmitter();
  const webContents: WebContentsLike = {
    id: 1,
    send: (channel, ...args) => rendererSide.emit(channel, {}, ...structuredClone(args)),
    isDestroyed: () => false,
    once: () => {},
  };
  return {
    ipcMain: { handle: (channel: string, fn: (e: IpcMainEventLike, ...a: unknown[]) => unknown) => void handlers.set(channel, fn) },
    ipcRenderer: {
      invoke: async (channel: string, ...args: unknown[]) =>
        structuredClone(await handlers.get(channel)!({ sender: webContents, senderFrame: { url: 'file:///app/index.html' } }, ...structuredClone(args))),
      on: (channel: string, fn: (e: unknown, ...a: unknown[]) => void) => void rendererSide.on(channel, fn),
    },
  };
}

let sb: AgentSandbox;
let agent: Agent;
let server: HeadlessServer;

beforeAll(async () => {
  sb = createSandbox();
  sb.writeOsRelease({ NAME: 'Tabula Workstation', IMAGE_ID: 'tabula-ws', IMAGE_VERSION: '2026.11.3' });
  // Big enough that the run is visible in events before it finishes.
  fs.writeFileSync(path.join(sb.home, 'big.bin'), Buffer.alloc(64 << 20, 7));
  agent = createAgent({ paths: resolvePaths(sb.env), autoStart: false });
  server = await startHttpServer({ router: agent.router, events: agent.events, staticDir: path.join(sb.dir, 'no-ui') });
});
afterAll(async () => {
  await agent.shutdown();
  await server.close();
  await sb.dispose();
});

const transports: Record<string, () => ApiClient> = {
  'in-process': () => createInProcessClient(agent.router, agent.events),
  'http+sse': () => createHttpClient({ baseUrl: server.url, token: server.token, retryMs: 100 }),
  'electron ipc': () => {
    const pair = createFakeIpcPair();
    serveIpc(pair.ipcMain, agent.router, agent.events, () => true);
    return createBridgeClient(createPreloadBridge(pair.ipcRenderer));
  },
};

async function rejection(p: Promise<unknown>): Promise<TabulaError> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(TabulaError);
  return err as TabulaError;
}

describe.each(Object.entries(transports))('contract over %s', (_name, makeClient) => {
  it('reports the booted image version from os-release', async () => {
    const status = await makeClient().call('status.get', {});
    expect(status.image).toMatchObject({ name: 'Tabula Workstation', version: '2026.11.3', id: 'tabula-ws' });
  });

  it('refuses unknown methods and invalid arguments with typed errors', async () => {
    const client = makeClient();
    const unknown = await rejection(client.call('no.such' as 'status.get', {}));
    expect(unknown.code).toBe('unknown-method');
    const invalid = await rejection(client.call('backup.history', { limit: -3 }));
    expect(invalid).toMatchObject({ code: 'invalid-argument', retryable: false });
    expect(invalid.message).toMatch(/limit/);
  });

  it('streams numbered events of a backup and carries a typed error intact', async () => {
    const client = makeClient();
    const seen: AgentEvent[] = [];
    let ready!: () => void;
    const connected = new Promise<void>((r) => (ready = r));
    let requestedAt = '';
    // The run answering our request is the first one that starts after it (an earlier one may be finishing).
    const ours = (e: AgentEvent) => e.type === 'backup-finished' && !!requestedAt && e.data.startedAt >= requestedAt;
    const finished = new Promise<void>((resolve) => {
      client.subscribe(
        (e) => {
          seen.push(e);
          if (ours(e)) resolve();
        },
        () => ready(),
      );
    });
    await connected;
    requestedAt = (await client.call('backup.start', {})).requestedAt;
    await finished;
    const ids = seen.map((e) => e.id);
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    expect(new Set(ids).size).toBe(ids.length);
    const done = seen.find(ours)!;
    expect(done).toMatchObject({ type: 'backup-finished', data: { outcome: 'success', error: null } });
    expect(seen.slice(0, seen.indexOf(done))).toContainEqual(expect.objectContaining({ type: 'backup-state-changed', data: expect.objectContaining({ to: 'running' }) }));
    const history = await client.call('backup.history', { limit: 5 });
    expect(history.map((r) => r.id)).toContain(done.type === 'backup-finished' && done.data.id);

    await client.call('backup.pause', {});
    const paused = await rejection(client.call('backup.start', {}));
    expect(paused).toMatchObject({ code: 'not-running', retryable: false, message: 'Sync is paused. Resume it first.' });
    expect((await client.call('backup.resume', {})).paused).toBe(false);
    await agent.router.handle('backup.cancel', {});
  });

  it('tells a client that missed events to refetch', async () => {
    const reply = await makeClient().call('events.since', { after: agent.events.lastId() + 50 });
    expect(reply.complete).toBe(false);
  });
});

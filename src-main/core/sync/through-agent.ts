// `tabula sync` while the agent runs: the run is made by the agent (`sync.run` over its socket), which
// knows from its change journal which folders of the home changed and keeps its ssh connection open,
// where a process of its own would list the whole home (100,000 files: ~1 s) to find nothing.
// Plain HTTP by hand over the socket, not the contract's client: that one loads zod (0.8 MB, ~0.1 s of start).
import fs from 'node:fs';
import net from 'node:net';
import type { BackupProgress, SyncRunSummary } from '../../common/contract/sync';
import { isErrorInfo, TabulaError } from '../../common/errors';

export interface ThroughAgentHooks {
  onWaiting(reason: string): void;
  onProgress(p: BackupProgress): void;
}

/**
 * The summary of a run the agent made for us; null when no agent of ours answers there, or it will not
 * run one (paused, or an agent from before `sync.run`): the caller then runs the sync itself, as before.
 * A failed run throws its error, as a run made here would. The socket must be this user's (in the
 * runtime folder the caller has checked): nothing is sent to anything else.
 */
export async function syncThroughAgent(socketPath: string, args: { force: boolean; verify: boolean }, hooks: ThroughAgentHooks): Promise<SyncRunSummary | null> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(socketPath);
  } catch {
    return null;
  }
  if (!st.isSocket() || st.uid !== process.getuid!()) return null;

  // The agent's events first (its progress, and why it waits), so that none of this run's is missed.
  const events = await openEvents(socketPath, hooks).catch(() => null);
  if (!events) return null; // a socket left by an agent that died
  // Ctrl-C stops the run in the agent, as it would stop a run made here; the run's end then says so.
  // A second one does not wait for that.
  let asked = false;
  const cancel = () => (asked ? process.exit(130) : ((asked = true), void post(socketPath, 'backup.cancel', {}).catch(() => {})));
  process.on('SIGINT', cancel);
  try {
    const reply = await post(socketPath, 'sync.run', args);
    if (reply.ok) return reply.result as SyncRunSummary;
    const error = isErrorInfo(reply.error) ? reply.error : { code: 'internal' as const, message: 'The Tabula agent gave an answer Tabula does not understand.', retryable: false };
    if (error.code === 'unknown-method' || error.code === 'not-running') return null;
    throw TabulaError.fromInfo(error);
  } catch (err) {
    if (err instanceof TabulaError) throw err;
    throw new TabulaError('agent-unreachable', `The Tabula agent stopped answering during the sync (${(err as Error).message}). Run \`tabula sync\` again.`, { retryable: true });
  } finally {
    process.off('SIGINT', cancel);
    events.close();
  }
}

type Reply = { ok: true; result: unknown } | { ok: false; error: unknown };

/**
 * One HTTP/1.0 exchange over the socket, by hand on a plain socket: the agent answers a 1.0 request
 * without chunking and closes the connection at the end, so the body is everything after the head.
 * Not node:http: its client cost this process ~0.03 s of its ~0.07 s over a bare Node start (its own
 * modules, and the IPv6 pattern it compiles to name a server a socket does not need; issue 9).
 * Resolves with the status once the head is in; `onBody` gets the body's text as it comes.
 */
function exchange(socketPath: string, request: string, onBody: (text: string) => void, onEnd: () => void): Promise<{ status: number; close(): void }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ path: socketPath });
    let head: string | null = '';
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(request));
    socket.on('data', (text: string) => {
      if (head === null) return onBody(text);
      head += text;
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return head.length > 64 * 1024 ? socket.destroy(new Error('an answer without an end to its head')) : undefined;
      const status = Number(/^HTTP\/1\.[01] (\d{3}) /.exec(head)?.[1]);
      if (!status) return socket.destroy(new Error('an answer that is not HTTP'));
      const body = head.slice(end + 4);
      head = null;
      resolve({ status, close: () => socket.destroy() });
      if (body) onBody(body);
    });
    socket.on('end', () => (head === null ? onEnd() : reject(new Error('the connection closed before an answer'))));
    socket.on('error', (err) => (head === null ? onEnd() : reject(err)));
  });
}

function post(socketPath: string, method: string, args: unknown): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify(args);
    let text = '';
    let status = 0;
    const ended = () => {
      try {
        resolve(JSON.parse(text) as Reply);
      } catch {
        reject(new Error(`an answer that is not JSON (HTTP ${status})`));
      }
    };
    exchange(socketPath, `POST /api/call/${method} HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`, (t) => (text += t), ended).then((r) => (status = r.status), reject);
  });
}

/** The agent's event stream, resolved once it is live (its first message, a reset). */
function openEvents(socketPath: string, hooks: ThroughAgentHooks): Promise<{ close(): void }> {
  return new Promise((resolve, reject) => {
    let buffer = '';
    let live: { close(): void } | null = null;
    let reset = false;
    const onBody = (text: string) => {
      buffer += text;
      for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const type = /^event: (.*)$/m.exec(block)?.[1] ?? 'message';
        const data = block.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
        if (type === 'reset') {
          reset = true;
          if (live) resolve(live);
        } else if (data) onEvent(JSON.parse(data) as { type: string; data: Record<string, unknown> }, hooks);
      }
    };
    exchange(socketPath, 'GET /api/events?after=-1 HTTP/1.0\r\nHost: localhost\r\n\r\n', onBody, () => reject(new Error('the event stream ended'))).then((r) => {
      if (r.status !== 200) {
        r.close();
        return reject(new Error(`HTTP ${r.status}`));
      }
      live = r;
      if (reset) resolve(r);
    }, reject);
  });
}

function onEvent(e: { type: string; data: Record<string, unknown> }, hooks: ThroughAgentHooks) {
  if (e.type === 'backup-progress') hooks.onProgress(e.data as unknown as BackupProgress);
  // Once running, a new reason while still running is the run waiting (another laptop holds the storage).
  else if (e.type === 'backup-state-changed' && e.data.from === 'running' && e.data.to === 'running') hooks.onWaiting(String(e.data.reason));
}

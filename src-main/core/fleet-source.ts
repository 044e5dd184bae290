// Reads one small file the fleet publishes (channel, signature, manifest, command) from wherever it
// is served: http(s):// (any web server or CDN), ssh:// (rsync over ssh) or a local/mounted folder.
// Sizes are capped: a hostile server must not make the agent read gigabytes into memory.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TabulaError } from '../common/errors';
import { readSmallRegularFile } from './atomic-file';
import { IO_TIMEOUT_SECONDS, runRsync, type RsyncResult } from './rsync';
import { connectionFailed, describeRsyncFailure, loginRefused } from './rsync-errors';
import { parseStorageUrl, rsyncTarget, sshCommand } from './storage-url';

export interface FleetSource {
  url: string;
  sshOptions: string[];
  connectTimeoutSeconds: number;
}

const MAX_BYTES = 64 * 1024 * 1024;

export interface FetchOptions {
  rsyncPath?: string;
  maxBytes?: number;
  /** How long a server over ssh may stay silent before the fetch stops (default {@link IO_TIMEOUT_SECONDS}); tests make it short. */
  ioTimeoutSeconds?: number;
}

/**
 * rsync over ssh from the fleet server, with the sync's stall watch: a server whose rsync hangs (a dead
 * disk, a stopped process) while its sshd still answers ssh's keep-alives would otherwise hold the
 * agent's schedule, or the root helper a person waits on, for ever.
 */
async function fetchOverSsh(source: FleetSource, args: string[], opts: FetchOptions): Promise<RsyncResult> {
  const timeout = opts.ioTimeoutSeconds ?? IO_TIMEOUT_SECONDS;
  const r = await runRsync([`--timeout=${timeout}`, ...args], {}, { rsyncPath: opts.rsyncPath, stallSeconds: timeout }).done;
  // 23 with "No such file" means the server has no such file: a normal answer, not an outage.
  if (r.code === 0 || (r.code === 23 && /No such file or directory/.test(r.stderr))) return r;
  throw describeFleetFailure(r, source.url, timeout);
}

/**
 * A failed rsync from the fleet server, in words that name it (the storage's wording speaks of a
 * backup). `timeout`: the run's --timeout, which rsync's exit 30 means was reached.
 */
export function describeFleetFailure(r: RsyncResult, url: string, timeout: number): TabulaError {
  const silent = r.stalledSeconds ?? (r.code === 30 ? timeout : null);
  if (silent !== null) return new TabulaError('image-unreachable', `The fleet server ${url} stopped answering (nothing came back for ${silent} seconds). Tabula tries again later.`, { retryable: true });
  if (r.spawnError) return describeRsyncFailure(r, { home: os.homedir(), storage: url, cancelled: false }); // rsync missing on this computer
  if (r.signal || r.code === 20) return new TabulaError('cancelled', `Fetching from the fleet server ${url} was stopped before it finished.`, { retryable: true });
  const login = loginRefused(r);
  if (login) return new TabulaError('image-unreachable', `The fleet server ${url} refused this computer's login (${login}).`);
  const why = connectionFailed(r);
  if (why) return new TabulaError('image-unreachable', `The fleet server ${url} could not be reached (${why}).`, { retryable: true });
  const said = r.stderr.split('\n').find((l) => l.trim())?.replace(/^rsync(?: error)?: /, '').trim() ?? 'no message';
  return new TabulaError('image-unreachable', `Fetching from the fleet server ${url} failed (rsync error ${r.code}: ${said}).`, { retryable: true });
}
/** A detached signature is 88 bytes of base64. */
const SIGNATURE_MAX_BYTES = 4096;

/**
 * Several files at once (e.g. a file and its signature): over ssh in one rsync run, as each run
 * costs a round trip and a remote process. Missing files come back as null.
 */
export async function fetchFleetFiles(source: FleetSource, rels: string[], opts: FetchOptions = {}): Promise<(Buffer | null)[]> {
  if (/^https?:\/\//.test(source.url) || parseStorageUrl(source.url).kind === 'local') {
    return Promise.all(rels.map((r) => fetchFleetFile(source, r, r.endsWith('.sig') ? { ...opts, maxBytes: SIGNATURE_MAX_BYTES } : opts)));
  }
  const storage = parseStorageUrl(source.url);
  const names = new Set(rels.map((r) => path.posix.basename(r)));
  if (names.size !== rels.length) return Promise.all(rels.map((r) => fetchFleetFile(source, r, opts)));
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-fetch-'));
  try {
    const base = rsyncTarget(storage).replace(/\/$/, '');
    await fetchOverSsh(source, ['--no-h', `--max-size=${opts.maxBytes ?? MAX_BYTES}`, '-e', sshCommand(storage, source.sshOptions, source.connectTimeoutSeconds), '--', ...rels.map((r) => `${base}/${r}`), tmp + '/'], opts);
    return rels.map((rel) => {
      const f = path.join(tmp, path.posix.basename(rel));
      return fs.existsSync(f) ? fs.readFileSync(f) : null;
    });
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/** The file's bytes, or null when the server says it does not exist. Throws image-unreachable otherwise. */
export async function fetchFleetFile(source: FleetSource, rel: string, opts: FetchOptions = {}): Promise<Buffer | null> {
  const max = opts.maxBytes ?? MAX_BYTES;
  const unreachable = (why: string) => new TabulaError('image-unreachable', `The fleet server ${source.url} could not be reached (${why}).`, { retryable: true });
  if (/^https?:\/\//.test(source.url)) {
    let res: Response;
    try {
      res = await fetch(new URL(rel, source.url.endsWith('/') ? source.url : source.url + '/'), { signal: AbortSignal.timeout(source.connectTimeoutSeconds * 1000 * 3) });
    } catch (err) {
      throw unreachable((err as Error).cause ? String(((err as Error).cause as Error).message ?? (err as Error).cause) : (err as Error).message);
    }
    if (res.status === 404) {
      await res.body?.cancel();
      return null;
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw unreachable(`HTTP ${res.status}`);
    }
    return readCapped(res, max, () => tooLarge(rel, max));
  }
  const storage = parseStorageUrl(source.url);
  if (storage.kind === 'local') {
    if (!fs.existsSync(storage.path)) throw unreachable(`the folder ${storage.path} does not exist or is not mounted`);
    // A mounted fleet folder is as hostile as a web server: a FIFO there must not hang the root
    // helper, a device must not be read, a link must not lead to a file of this machine.
    const r = readSmallRegularFile(path.join(storage.path, rel), { maxBytes: max });
    if (r.status === 'missing') return null;
    if (r.status === 'ok') return r.data;
    if (/too large/.test(r.problem)) throw tooLarge(rel, max);
    throw new TabulaError('image-invalid', `${rel} on the fleet server ${r.problem}: refused.`);
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-fetch-'));
  try {
    await fetchOverSsh(source, ['--no-h', `--max-size=${max}`, '-e', sshCommand(storage, source.sshOptions, source.connectTimeoutSeconds), '--', rsyncTarget(storage).replace(/\/$/, '') + '/' + rel, tmp + '/file'], opts);
    return fs.existsSync(tmp + '/file') ? fs.readFileSync(tmp + '/file') : null;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

const tooLarge = (rel: string, max: number) => new TabulaError('image-invalid', `${rel} on the fleet server is larger than ${max} bytes: refused.`);

/**
 * The body, read chunk by chunk and abandoned as soon as it passes `max`: a server that sends
 * (or claims) more is refused without the bytes ever being held in memory.
 */
async function readCapped(res: Response, max: number, tooBig: () => Error): Promise<Buffer> {
  const declared = Number(res.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > max) {
    await res.body?.cancel();
    throw tooBig();
  }
  if (!res.body) return Buffer.alloc(0);
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let got = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    got += value.byteLength;
    if (got > max) {
      await reader.cancel();
      throw tooBig();
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks, got);
}

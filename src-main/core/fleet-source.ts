// Reads one small file the fleet publishes (channel, signature, manifest, command) from wherever it
// is served: http(s):// (any web server or CDN), ssh:// (rsync over ssh) or a local/mounted folder.
// Sizes are capped: a hostile server must not make the agent read gigabytes into memory.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TabulaError } from '../common/errors';
import { runRsync } from './rsync';
import { describeRsyncFailure } from './rsync-errors';
import { parseStorageUrl, rsyncTarget, sshCommand } from './storage-url';

export interface FleetSource {
  url: string;
  sshOptions: string[];
  connectTimeoutSeconds: number;
}

const MAX_BYTES = 64 * 1024 * 1024;

/**
 * Several files at once (e.g. a file and its signature): over ssh in one rsync run, as each run
 * costs a round trip and a remote process. Missing files come back as null.
 */
export async function fetchFleetFiles(source: FleetSource, rels: string[], opts: { rsyncPath?: string; maxBytes?: number } = {}): Promise<(Buffer | null)[]> {
  if (/^https?:\/\//.test(source.url) || parseStorageUrl(source.url).kind === 'local') return Promise.all(rels.map((r) => fetchFleetFile(source, r, opts)));
  const storage = parseStorageUrl(source.url);
  const names = new Set(rels.map((r) => path.posix.basename(r)));
  if (names.size !== rels.length) return Promise.all(rels.map((r) => fetchFleetFile(source, r, opts)));
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-fetch-'));
  try {
    const base = rsyncTarget(storage).replace(/\/$/, '');
    const run = runRsync(
      ['--no-h', `--max-size=${opts.maxBytes ?? MAX_BYTES}`, '-e', sshCommand(storage, source.sshOptions, source.connectTimeoutSeconds), '--', ...rels.map((r) => `${base}/${r}`), tmp + '/'],
      {},
      { rsyncPath: opts.rsyncPath },
    );
    const r = await run.done;
    if (r.code !== 0 && !(r.code === 23 && /No such file or directory/.test(r.stderr))) {
      const e = describeRsyncFailure(r, { home: os.homedir(), storage: source.url, cancelled: false });
      throw new TabulaError('image-unreachable', e.message, { retryable: e.retryable, details: e.details });
    }
    return rels.map((rel) => {
      const f = path.join(tmp, path.posix.basename(rel));
      return fs.existsSync(f) ? fs.readFileSync(f) : null;
    });
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/** The file's bytes, or null when the server says it does not exist. Throws image-unreachable otherwise. */
export async function fetchFleetFile(source: FleetSource, rel: string, opts: { rsyncPath?: string; maxBytes?: number } = {}): Promise<Buffer | null> {
  const max = opts.maxBytes ?? MAX_BYTES;
  const unreachable = (why: string) => new TabulaError('image-unreachable', `The fleet server ${source.url} could not be reached (${why}).`, { retryable: true });
  if (/^https?:\/\//.test(source.url)) {
    let res: Response;
    try {
      res = await fetch(new URL(rel, source.url.endsWith('/') ? source.url : source.url + '/'), { signal: AbortSignal.timeout(source.connectTimeoutSeconds * 1000 * 3) });
    } catch (err) {
      throw unreachable((err as Error).cause ? String(((err as Error).cause as Error).message ?? (err as Error).cause) : (err as Error).message);
    }
    if (res.status === 404) return null;
    if (!res.ok) throw unreachable(`HTTP ${res.status}`);
    const body = Buffer.from(await res.arrayBuffer());
    if (body.length > max) throw new TabulaError('image-invalid', `${rel} on the fleet server is larger than ${max} bytes: refused.`);
    return body;
  }
  const storage = parseStorageUrl(source.url);
  if (storage.kind === 'local') {
    if (!fs.existsSync(storage.path)) throw unreachable(`the folder ${storage.path} does not exist or is not mounted`);
    const file = path.join(storage.path, rel);
    try {
      const st = fs.statSync(file);
      if (st.size > max) throw new TabulaError('image-invalid', `${rel} on the fleet server is larger than ${max} bytes: refused.`);
      return fs.readFileSync(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-fetch-'));
  try {
    const run = runRsync(
      ['--no-h', `--max-size=${max}`, '-e', sshCommand(storage, source.sshOptions, source.connectTimeoutSeconds), '--', rsyncTarget(storage).replace(/\/$/, '') + '/' + rel, tmp + '/file'],
      {},
      { rsyncPath: opts.rsyncPath },
    );
    const r = await run.done;
    // 23 with "No such file" means the server has no such file: a normal answer, not an outage.
    if (r.code === 23 && /No such file or directory/.test(r.stderr)) return null;
    if (r.code !== 0) {
      const e = describeRsyncFailure(r, { home: os.homedir(), storage: source.url, cancelled: false });
      throw new TabulaError('image-unreachable', e.message, { retryable: e.retryable, details: e.details });
    }
    return fs.existsSync(tmp + '/file') ? fs.readFileSync(tmp + '/file') : null;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

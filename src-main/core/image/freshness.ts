// Rollback and freeze protection for what the update server publishes (TUF's model): every channel
// file, fleet policy and ostree summary carries a `serial` that only grows and an `expires` time.
// The machine keeps the highest serial and the highest image version it accepted in a root-owned
// record (<root>/var/lib/tabula/trust.json; the agent keeps its own for the policy it reads), and
// refuses older, replayed or expired data. Going back to an older version is only ever the fleet's
// explicit signed act: a `pin` in the policy naming that version.
import crypto from 'node:crypto';
import { z } from 'zod';
import { TabulaError } from '../../common/errors';
import { readJsonDocument, writeFileAtomic } from '../atomic-file';

export const serialSchema = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);
export const expiresSchema = z.string().datetime();

const recordSchema = z.object({ serial: serialSchema, expires: expiresSchema, sha256: z.string().regex(/^[0-9a-f]{64}$/) }).strict();
const trustSchema = z
  .object({
    format: z.literal('tabula-trust-1'),
    /** "channel:stable", "policy", "summary:<url>" → what was accepted last. */
    accepted: z.record(z.string(), recordSchema),
    /** The newest image version ever accepted; older ones need a pin. */
    highestVersion: z.string().nullable(),
  })
  .strict();
export type TrustRecord = z.infer<typeof trustSchema>;

/** What the status shows about the update server's data: the serial and expiry last accepted. */
export interface ServerData {
  serial: number;
  expires: string;
}

/** "1.10" > "1.9", "2.0" > "2.0-beta"? No: compared part by part, digits as numbers, text as text. */
export function compareVersions(a: string, b: string): number {
  const parts = (v: string) => v.split(/[.+_-]/).flatMap((p) => p.match(/\d+|\D+/g) ?? []);
  const pa = parts(a);
  const pb = parts(b);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i];
    const y = pb[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    const nx = /^\d+$/.test(x);
    const ny = /^\d+$/.test(y);
    if (nx && ny) {
      const d = Number(x) - Number(y);
      if (d) return Math.sign(d);
    } else if (nx !== ny) return nx ? 1 : -1;
    else if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

/** "2026-12-01 14:00 UTC": how an expiry is shown to a person. */
export function showTime(iso: string): string {
  return new Date(iso).toISOString().replace('T', ' ').slice(0, 16) + ' UTC';
}

export function staleReason(expires: string): string {
  return `Update server data is out of date since ${showTime(expires)}: the server keeps sending data that has expired (stuck, or held back by someone in between). Not up to date.`;
}

/** `mode`: 0644 for root's record (nothing secret), 0600 for the agent's (state is private). */
export function createTrustStore(file: string, now: () => number = Date.now, mode = 0o644) {
  const empty = (): TrustRecord => ({ format: 'tabula-trust-1', accepted: {}, highestVersion: null });

  function load(): TrustRecord {
    const r = readJsonDocument(file, trustSchema);
    if (r.status === 'ok') return r.value;
    if (r.status === 'missing') return empty();
    // Falling back to nothing would accept any replay: refuse until a person repairs it.
    throw new TabulaError('image-invalid', `The record of accepted update data (${file}) ${r.problem}: no update is accepted until it is repaired.`);
  }

  return {
    file,
    load,
    /**
     * Checks signed metadata (already verified) against what was accepted before, and records it.
     * `label` names it for a person ("channel", "fleet policy"). Throws image-stale.
     */
    accept(key: string, label: string, bytes: Buffer, meta: ServerData): void {
      const state = load();
      const known = state.accepted[key];
      const sha256 = crypto.createHash('sha256').update(bytes).digest('hex');
      if (known && meta.serial < known.serial) {
        throw new TabulaError('image-stale', `The update server sent an older ${label} (serial ${meta.serial} < ${known.serial}); ignored.`, { retryable: true });
      }
      if (known && meta.serial === known.serial && sha256 !== known.sha256) {
        throw new TabulaError('image-stale', `The update server sent a different ${label} under the same serial ${meta.serial}; ignored.`, { retryable: true });
      }
      if (Date.parse(meta.expires) <= now()) throw new TabulaError('image-stale', staleReason(meta.expires), { retryable: true, details: [`The ${label} (serial ${meta.serial}) expired at ${meta.expires}.`] });
      if (!known || meta.serial > known.serial) {
        state.accepted[key] = { ...meta, sha256 };
        save(state);
      }
    },
    /** Refuses a version older than the newest accepted, unless the fleet pinned exactly it. */
    acceptVersion(version: string, pin: string | null): void {
      const state = load();
      const highest = state.highestVersion;
      if (highest && compareVersions(version, highest) < 0 && pin !== version) {
        throw new TabulaError('image-stale', `The update server offers version ${version}, older than ${highest} already accepted; ignored. Going back needs a pin naming ${version} in the signed fleet policy.`, { retryable: true });
      }
      if (!highest || compareVersions(version, highest) > 0) save({ ...state, highestVersion: version });
    },
  };

  function save(state: TrustRecord) {
    writeFileAtomic(file, JSON.stringify(state, null, 1) + '\n', mode);
  }
}
export type TrustStore = ReturnType<typeof createTrustStore>;

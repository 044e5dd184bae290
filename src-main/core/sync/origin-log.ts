// Which laptop wrote the storage's copy of a file. The storage keeps bytes, not authors, so each laptop
// keeps a short record of what it last pushed at .tabula/origin/<host> on the storage: one line per
// file, a digest of the path with the time and size it was sent with. A conflict looks up the storage's
// version there to name its copy after the laptop that made it ("storage" when no record says).
//
// The record stays small (the newest lines only, each of fixed length) and is read only when a run
// meets a conflict. Everything read back is hostile: only names that are host names, at most
// MAX_HOSTS records of at most MAX_BYTES each, and only well-formed lines count.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../atomic-file';
import type { Endpoint } from './endpoint';
import { STORAGE_AREA, type Entry } from './tree';

export const ORIGIN_DIR = `${STORAGE_AREA}/origin`;
/** The newest pushes a record keeps: a conflict is about a recent edit. */
export const MAX_LINES = 4000;
const LINE = /^([0-9a-f]{24}) (\d{1,30}) (\d{1,20})$/;
const MAX_BYTES = MAX_LINES * 72;
const MAX_HOSTS = 64;
/** A host name as a laptop names itself (RFC 1123 labels, dots, and "_" seen in the wild). */
const HOST = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

export const isHostName = (h: string) => HOST.test(h);

const lineOf = (p: string, e: Pick<Entry, 'mtime' | 'size'>) => `${crypto.createHash('sha256').update(p).digest('hex').slice(0, 24)} ${e.mtime} ${e.size}`;

/** The record's file name for this laptop, or null when the host name cannot be one. */
const recordName = (host: string) => (isHostName(host) ? host : null);

/**
 * Adds what this run sent to this laptop's record (kept in the state folder, the storage's copy
 * replaced whole). Best effort: a record that could not be written only makes a later conflict name
 * say "storage" instead of this laptop.
 */
export async function recordPushed(storage: Endpoint, stateDir: string, host: string, sent: Array<[string, Pick<Entry, 'mtime' | 'size'>]>): Promise<void> {
  const name = recordName(host);
  if (!name || !sent.length) return;
  const local = path.join(stateDir, 'origin-pushed');
  let before: string[] = [];
  try {
    before = fs.readFileSync(local, 'utf8').split('\n').filter((l) => LINE.test(l));
  } catch {
    // none yet
  }
  const added = sent.map(([p, e]) => lineOf(p, e));
  const fresh = new Set(added);
  const lines = [...before.filter((l) => !fresh.has(l)), ...added].slice(-MAX_LINES);
  const body = lines.join('\n') + '\n';
  writeFileAtomic(local, body);
  await storage.sh('mkdir -p -- "$1" && cat > "$1/.$2.tmp" && mv -f -- "$1/.$2.tmp" "$1/$2"', [`${storage.path}/${ORIGIN_DIR}`, name], Buffer.from(body)).catch(() => {});
}

/** Finds the laptop whose record says it sent this exact version of the path. */
export type OriginLookup = (p: string, e: Pick<Entry, 'mtime' | 'size'>) => string | null;

// Each record as "name\n<bytes>\0"; names that are not host names and anything not a plain file are
// skipped on the storage's side, and again here.
const readScript = `cd -- "$1" 2>/dev/null || exit 0
n=0
for f in *; do
  case "$f" in ''|.*|*[!A-Za-z0-9_.-]*) continue ;; esac
  [ -f "$f" ] && [ ! -L "$f" ] || continue
  n=$((n + 1)); [ "$n" -le ${MAX_HOSTS} ] || break
  printf '%s\\n' "$f"; head -c ${MAX_BYTES} -- "$f" | tr -d '\\000'; printf '\\000'
done`;

/** Reads every laptop's record once; a storage that cannot be read gives a lookup that knows nobody. */
export async function readOrigins(storage: Endpoint): Promise<OriginLookup> {
  const byLine = new Map<string, string>();
  const r = await storage.sh(readScript, [`${storage.path}/${ORIGIN_DIR}`]).catch(() => null);
  if (r?.code === 0) {
    const records = r.stdout.subarray(0, (MAX_BYTES + 100) * MAX_HOSTS).toString('utf8').split('\0');
    for (const rec of records.slice(0, MAX_HOSTS)) {
      const nl = rec.indexOf('\n');
      const host = rec.slice(0, nl);
      if (nl < 0 || !isHostName(host)) continue;
      for (const l of rec.slice(nl + 1, nl + 1 + MAX_BYTES).split('\n')) {
        // Two laptops that sent the same bytes at the same time: either name is true; the first stays.
        if (LINE.test(l) && !byLine.has(l)) byLine.set(l, host);
      }
    }
  }
  return (p, e) => byLine.get(lineOf(p, e)) ?? null;
}

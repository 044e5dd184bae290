// The archive's format (version 3): its file name, header and records, and what an old archive's rounded
// times mean. Below both readers, the streaming one (archive.ts) and the one that loads an archive
// whole or converts a version 1 or 2 JSON archive (archive-json.ts).
import fs from 'node:fs';
import type { Entry } from './tree';

/** One entry of a rounded archive against what the listings show now (see {@link adoptListedTimes}). */
export function adoptListedTime(a: Entry, ...listed: (Entry | undefined)[]): Entry {
  if (a.type === 'd') return a;
  for (const e of listed) {
    const diff = e ? e.mtime - a.mtime : 0n;
    if (e && e.type === a.type && e.size === a.size && diff > -2000n && diff < 2000n) return { ...a, mtime: e.mtime };
  }
  return a;
}

export const ARCHIVE_FILE = 'sync-archive';
export const MAGIC = 'tabula-archive';
export const FORMAT = 3;

/** "<type> <size> <mtime ns> <stamp|-> <remote stamp|-> <name>" */
export function formatRecord(name: string, e: Entry): string {
  return `${e.type} ${e.size} ${e.mtime} ${e.stamp || '-'} ${e.remoteStamp || '-'} ${name}\0`;
}

// Checked by hand, cheaply: this runs for every entry of every sync.
export function parseArchiveRecord(rec: string): [string, Entry] | null {
  const s1 = rec.indexOf(' ');
  const s2 = rec.indexOf(' ', s1 + 1);
  const s3 = rec.indexOf(' ', s2 + 1);
  const s4 = rec.indexOf(' ', s3 + 1);
  const s5 = rec.indexOf(' ', s4 + 1);
  if (s1 !== 1 || s2 < 0 || s3 < 0 || s4 < 0 || s5 < 0 || s5 + 1 >= rec.length) return null;
  const type = rec[0];
  if (type !== 'f' && type !== 'd' && type !== 'l') return null;
  const size = Number(rec.slice(2, s2));
  if (s2 === 2 || !Number.isSafeInteger(size) || size < 0 || s3 === s2 + 1 || s4 === s3 + 1 || s5 === s4 + 1 || s5 - s4 > 81 || s4 - s3 > 81) return null;
  let mtime: bigint;
  try {
    mtime = BigInt(rec.slice(s2 + 1, s3));
  } catch {
    return null;
  }
  const e: Entry = { type, size, mtime };
  const stamp = rec.slice(s3 + 1, s4);
  const remoteStamp = rec.slice(s4 + 1, s5);
  if (stamp !== '-') e.stamp = stamp;
  if (remoteStamp !== '-') e.remoteStamp = remoteStamp;
  return [rec.slice(s5 + 1), e];
}

/** "tabula-archive 3 <rounded 0|1> <storage>" */
export function readHeader(file: string): { rounded: boolean; storage: string } | null {
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    const buf = Buffer.alloc(4096);
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    const end = buf.subarray(0, n).indexOf(0);
    if (end < 0) return null;
    const m = /^tabula-archive (\d+) ([01]) (.*)$/s.exec(buf.toString('utf8', 0, end));
    return m && Number(m[1]) === FORMAT ? { rounded: m[2] === '1', storage: m[3]! } : null;
  } finally {
    fs.closeSync(fd);
  }
}

// Every file Tabula writes is written atomically (temp file, fsync, rename) and read defensively:
// a damaged file gives a clear problem and the last good copy (`.bak`), never a crash.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { z } from 'zod';

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_RDONLY, O_NONBLOCK } = fs.constants;
// (libuv opens every file with O_CLOEXEC already.)

/**
 * The temp file has a random name and is created exclusively without following links: in a folder
 * another user can write to, a planted file or symlink at a predictable name cannot catch the data.
 */
export function writeFileAtomic(file: string, data: string | Buffer, mode = 0o644): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${crypto.randomBytes(6).toString('hex')}`;
  const fd = fs.openSync(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
  try {
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
  } catch (err) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
  // The rename must reach the disk too, or a power cut can bring back the old file.
  fsyncDir(path.dirname(file));
}

export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Files Tabula parses (config, preferences, manifests, policies, commands) are this small or refused. */
export const SMALL_FILE_MAX_BYTES = 1 << 20;

export type SmallFileRead = { status: 'missing' } | { status: 'ok'; data: Buffer } | { status: 'invalid'; problem: string };

export interface SmallFileOptions {
  /** Default SMALL_FILE_MAX_BYTES. */
  maxBytes?: number;
  /** Also require the file to be owned by this user with no group or other access (token, endpoint). */
  privateTo?: number;
}

// st_rdev of /dev/null on Linux (major 1, minor 3): "no file" said the Unix way.
const DEV_NULL_RDEV = (1 << 8) | 3;

/**
 * The one way Tabula reads a file someone else may have put there. Never follows a symlink at the
 * last component (O_NOFOLLOW), never blocks on a FIFO (O_NONBLOCK), accepts regular files only,
 * and reads at most maxBytes (a device like /dev/zero or a growing file cannot exhaust memory).
 * `/dev/null` reads as missing, so `TABULA_CONFIG=/dev/null` means "no extra config". Never throws.
 */
export function readSmallRegularFile(file: string, opts: SmallFileOptions = {}): SmallFileRead {
  const max = opts.maxBytes ?? SMALL_FILE_MAX_BYTES;
  let fd: number;
  try {
    fd = fs.openSync(file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { status: 'missing' };
    if (code === 'ELOOP') return { status: 'invalid', problem: 'is a symbolic link, which Tabula does not follow here' };
    if (code === 'EACCES') return { status: 'invalid', problem: 'cannot be read (permission denied)' };
    return { status: 'invalid', problem: `cannot be read (${code ?? String(err)})` };
  }
  try {
    const st = fs.fstatSync(fd);
    if (st.isCharacterDevice() && st.rdev === DEV_NULL_RDEV) return { status: 'missing' };
    if (!st.isFile()) return { status: 'invalid', problem: `is not a regular file (${kindOf(st)})` };
    if (opts.privateTo !== undefined) {
      if (st.uid !== opts.privateTo) return { status: 'invalid', problem: `belongs to another user (uid ${st.uid})` };
      if (st.mode & 0o077) return { status: 'invalid', problem: `can be read or changed by other users (mode ${(st.mode & 0o777).toString(8)})` };
    }
    if (st.size > max) return { status: 'invalid', problem: `is too large (${st.size} bytes; the limit is ${max})` };
    // Sized by the file, not the limit (a manifest's cap is 64 MiB); read one byte past the size and grow
    // up to one byte past the limit: a file that grew (or lies about its size) is still refused.
    let buf = Buffer.alloc(st.size + 1);
    let got = 0;
    for (;;) {
      if (got === buf.length) buf = Buffer.concat([buf, Buffer.alloc(Math.min(buf.length, max + 1 - buf.length))]);
      const n = fs.readSync(fd, buf, got, buf.length - got, null);
      if (n === 0) break;
      got += n;
      if (got > max) return { status: 'invalid', problem: `is too large (more than ${max} bytes)` };
    }
    return { status: 'ok', data: buf.subarray(0, got) };
  } catch (err) {
    return { status: 'invalid', problem: `cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})` };
  } finally {
    fs.closeSync(fd);
  }
}

function kindOf(st: fs.Stats): string {
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a pipe';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a file';
}

export type JsonRead<T> =
  | { status: 'missing' }
  | { status: 'ok'; value: T }
  | { status: 'invalid'; problem: string };

/** What is wrong with a document, in words that name the place: 'has an unknown key "a.b"', 'has an invalid value at "x": …'. */
export function describeSchemaIssue(err: z.ZodError): string {
  const issue = err.issues[0]!;
  // A complaint about the whole document (its version, its kind) is already a sentence's end.
  if (issue.code === 'custom' && !issue.path.length) return issue.message;
  const where = issue.path.join('.') || '(top)';
  if (issue.code === 'unrecognized_keys') return `has an unknown key "${[where === '(top)' ? '' : where + '.', issue.keys[0]].join('')}"`;
  return `has an invalid value at "${where}": ${issue.message}`;
}

export type Checked<T> = { ok: true; value: T } | { ok: false; problem: string };

/** Parses JSON bytes and hands them to a check (a schema's, or a cheaper one written by hand). */
export function parseJsonChecked<T>(bytes: Buffer, check: (json: unknown) => Checked<T>): Checked<T> {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    return { ok: false, problem: `is not valid JSON (${(err as Error).message})` };
  }
  return check(json);
}

/** A schema as a check: its first issue, in words that name the place. */
export function schemaCheck<T>(schema: z.ZodType<T>): (json: unknown) => Checked<T> {
  return (json) => {
    const parsed = schema.safeParse(json);
    return parsed.success ? { ok: true, value: parsed.data } : { ok: false, problem: describeSchemaIssue(parsed.error) };
  };
}

/** Parses JSON bytes into a schema. The problem completes a sentence that starts with the document's name. */
export function parseJsonDocument<T>(bytes: Buffer, schema: z.ZodType<T>): Checked<T> {
  return parseJsonChecked(bytes, schemaCheck(schema));
}

/**
 * The one way Tabula reads a JSON file (config layers, preferences, agent state, trust records):
 * readSmallRegularFile's checks (no symlink, regular file, size cap), then JSON, then the schema.
 * Never throws; a problem completes a sentence that starts with the file's name.
 */
export function readJsonDocument<T>(file: string, schema: z.ZodType<T>, opts: SmallFileOptions = {}): JsonRead<T> {
  const read = readSmallRegularFile(file, opts);
  if (read.status !== 'ok') return read;
  const parsed = parseJsonDocument(read.data, schema);
  return parsed.ok ? { status: 'ok', value: parsed.value } : { status: 'invalid', problem: parsed.problem };
}

/**
 * A JSON document the agent owns (history, journal, archive, conflicts). `.bak` has one meaning
 * everywhere (here and for the preferences): the last state saved, so a file damaged later (a hand
 * edit, a disk fault) falls back to exactly what was last written and nothing saved is lost. A
 * damaged file is never thrown away: with a good `.bak` it is moved aside (`.damaged-<time>`) and the
 * file restored from `.bak`; without one, every load says so and starts from empty, and the damaged
 * file stays where it is until something new is saved, which moves it aside first.
 */
export function createJsonStore<T>(file: string, schema: z.ZodType<T>, empty: () => T, opts: SmallFileOptions = {}) {
  const bak = `${file}.bak`;
  let damaged = false;
  const moveAside = () => {
    const aside = `${file}.damaged-${Date.now()}`;
    try {
      fs.renameSync(file, aside);
      return path.basename(aside);
    } catch {
      return null;
    }
  };
  return {
    file,
    load(): { value: T; problem: string | null } {
      const main = readJsonDocument(file, schema, opts);
      if (main.status === 'ok') return { value: main.value, problem: null };
      if (main.status === 'missing') return { value: empty(), problem: null };
      const damage = `${file} ${main.problem}`;
      const backup = readJsonDocument(bak, schema, opts);
      if (backup.status === 'ok') {
        const aside = moveAside();
        try {
          writeFileAtomic(file, JSON.stringify(backup.value, null, 1) + '\n', 0o600);
        } catch {
          damaged = true; // the next save writes it
        }
        return { value: backup.value, problem: `${damage}; using the last good copy${aside ? ` (the damaged file was kept as ${aside})` : ''}.` };
      }
      damaged = true;
      return { value: empty(), problem: `${damage}, and there is no good copy: starting afresh (the damaged file stays as it is until something new is saved, then is kept beside it as ${path.basename(file)}.damaged-<time>).` };
    },
    save(value: T): void {
      if (damaged && fs.existsSync(file) && readJsonDocument(file, schema, opts).status === 'invalid') moveAside();
      damaged = false;
      // Agent state names the user's files: private to the user.
      const text = JSON.stringify(value, null, 1) + '\n';
      writeFileAtomic(file, text, 0o600);
      writeFileAtomic(bak, text, 0o600);
    },
  };
}

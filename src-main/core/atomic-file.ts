// Every file Tabula writes is written atomically (temp file, fsync, rename) and read defensively:
// a damaged file gives a clear problem and the last good copy (`.bak`), never a crash.
import fs from 'node:fs';
import path from 'node:path';
import type { z } from 'zod';

export function writeFileAtomic(file: string, data: string | Buffer, mode = 0o644): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, 'w', mode);
  try {
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
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

export type JsonRead<T> =
  | { status: 'missing' }
  | { status: 'ok'; value: T }
  | { status: 'invalid'; problem: string };

/** Reads and validates one JSON file. Never throws for missing, unreadable, corrupt or invalid files. */
export function readJsonFile<T>(file: string, schema: z.ZodType<T>): JsonRead<T> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { status: 'missing' };
    return { status: 'invalid', problem: `cannot be read (${code ?? String(err)})` };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return { status: 'invalid', problem: `is not valid JSON (${(err as Error).message})` };
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    return { status: 'invalid', problem: `has an invalid value at "${issue.path.join('.') || '(top)'}": ${issue.message}` };
  }
  return { status: 'ok', value: parsed.data };
}

/**
 * A JSON document the agent owns (history, journal, archive): each save keeps the previous good copy
 * as `.bak`; a load that finds the file damaged falls back to it and reports the problem.
 */
export function createJsonStore<T>(file: string, schema: z.ZodType<T>, empty: () => T) {
  return {
    file,
    load(): { value: T; problem: string | null } {
      const main = readJsonFile(file, schema);
      if (main.status === 'ok') return { value: main.value, problem: null };
      if (main.status === 'missing') return { value: empty(), problem: null };
      const backup = readJsonFile(`${file}.bak`, schema);
      const damaged = `${file} ${main.problem}`;
      try {
        fs.renameSync(file, `${file}.damaged-${Date.now()}`); // keep it for a person to look at
      } catch {
        /* best effort */
      }
      if (backup.status === 'ok') return { value: backup.value, problem: `${damaged}; using the last good copy.` };
      return { value: empty(), problem: `${damaged}; starting afresh (the damaged file was kept beside it).` };
    },
    save(value: T): void {
      if (fs.existsSync(file)) fs.copyFileSync(file, `${file}.bak`);
      writeFileAtomic(file, JSON.stringify(value, null, 1) + '\n');
    },
  };
}

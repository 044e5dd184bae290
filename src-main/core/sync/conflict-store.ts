// The record of every conflict, kept for the window and `tabula conflicts`. Apart from conflicts.ts
// because it needs zod, which a sync loads only when it meets a conflict.
import path from 'node:path';
import { z } from 'zod';
import { createJsonStore } from '../atomic-file';
import type { ConflictRecord } from './conflicts';

export function recordConflicts(stateDir: string, added: ConflictRecord[]) {
  const store = conflictStore(stateDir);
  const { value } = store.load();
  // Every conflict stays listed (two on one path are two copies to look at), each once.
  store.save([...value.filter((c) => !added.some((a) => a.conflictPath === c.conflictPath)), ...added]);
}

const conflictSchema = z.array(z.object({ path: z.string(), conflictPath: z.string(), kept: z.enum(['local', 'remote']), at: z.string(), from: z.string().optional() }));
export function conflictStore(stateDir: string) {
  return createJsonStore<ConflictRecord[]>(path.join(stateDir, 'conflicts.json'), conflictSchema, () => []);
}

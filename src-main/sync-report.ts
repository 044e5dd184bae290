// What `tabula sync` prints at the end of a run, the same words whether the running agent made the run
// (sync-client.ts, which loads nothing else) or this process did (cli-sync.ts).
import type { SyncRunSummary } from './common/contract/sync';
import type { TabulaError } from './common/errors';

/** What a run says while it runs: why it waits (another laptop holds the storage), and its progress on a terminal. */
export const syncHooks = {
  onWaiting: (reason: string) => console.error(reason),
  onProgress: (p: { phase: string; percent: number; filesDone: number; filesTotal: number | null }) => process.stderr.isTTY && process.stderr.write(`\r${p.phase} ${p.percent}% ${p.filesDone}/${p.filesTotal ?? '?'}   `),
};

export const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

export function printSyncSummary(summary: SyncRunSummary, json: boolean) {
  if (process.stderr.isTTY) process.stderr.write('\n'); // after the progress line
  if (json) return console.log(JSON.stringify(summary, null, 2));
  const verb = summary.dryRun ? 'Would' : '';
  console.log(
    `${summary.dryRun ? 'Dry run: nothing was changed.\n' : ''}${verb ? 'Would send' : 'Sent'} ${plural(summary.counts.pushed, 'item')}, ${verb ? 'bring in' : 'brought in'} ${summary.counts.pulled}, ${verb ? 'delete' : 'deleted'} ${summary.counts.deletedRemote} on the storage and ${summary.counts.deletedLocal} here.`,
  );
  for (const [label, list, count] of [
    ['delete on the storage', summary.deletedRemote, summary.counts.deletedRemote],
    ['delete here', summary.deletedLocal, summary.counts.deletedLocal],
  ] as const) {
    if (!summary.dryRun) continue;
    for (const p of list) console.log(`  ${label}: ${p}`);
    if (count > list.length) console.log(`  …and ${count - list.length} more to ${label}`);
  }
  for (const c of summary.conflicts) console.log(`Conflict: ${c.path}${c.conflictPath ? ` — the other version is ${c.conflictPath}` : ''}`);
  for (const s of summary.skipped) console.log(`Skipped ${s.path}: ${s.why}`);
}

/** A run that failed or was refused: its words, and the exit code (2 refused, 1 failed). */
export function printSyncFailure(err: TabulaError, json: boolean) {
  if (json) console.log(JSON.stringify({ error: err.toInfo() }, null, 2));
  console.error(err.message);
  printDetails(err);
  if (err.code === 'sync-refused' && !err.message.includes('--force')) console.error('If this is what you meant, go ahead with: tabula sync --force');
  process.exitCode = err.code === 'sync-refused' ? 2 : 1;
}

/** The lines under an error: the files named, and how many more there are when only the first are. */
export function printDetails(err: { details?: string[]; detailsTotal?: number } | null) {
  const details = err?.details ?? [];
  for (const d of details) console.error(`  ${d}`);
  if (err?.detailsTotal !== undefined && err.detailsTotal > details.length) console.error(`  …and ${plural(err.detailsTotal - details.length, 'more file')}`);
}

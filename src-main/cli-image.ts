// `tabula image status [--json] | check | pull | rollback` and `tabula helpdesk plan|diagnostics`.
import type { ImageUpdateStatus } from './common/contract/image';
import type { ApiClient } from './common/contract';

export const imageUsage = `  tabula image status [--json]    booted, staged, available and rollback versions, next check
  tabula image check              ask the fleet server now
  tabula image pull               download, verify and stage the available version (shows progress)
  tabula image rollback           make the previous version the next boot
  tabula fleet poll               fetch and run this machine's signed fleet command now`;

const when = (iso: string | null) => (iso ? new Date(iso).toLocaleString() : 'never');
const dep = (d: { version: string; checksum: string | null } | null) => (d ? `${d.version}${d.checksum ? ` (${d.checksum.slice(0, 12)})` : ''}` : '—');

export function formatImageStatus(s: ImageUpdateStatus): string {
  const lines = [
    `Image updates: ${s.state} — ${s.reason}`,
    `  backend ${s.backend}, channel ${s.channel}`,
    `  booted:    ${dep(s.booted)}`,
    `  staged:    ${dep(s.staged)}${s.restartRequired ? '   → restart to update' : ''}`,
    `  available: ${dep(s.available)}`,
    `  rollback:  ${dep(s.rollback)}`,
    `  last check ${when(s.lastCheckAt)}; next check ${when(s.nextCheckAt)}`,
  ];
  if (s.serverData) lines.push(`  update server data: serial ${s.serverData.serial}, valid until ${when(s.serverData.expires)}`);
  if (s.progress) lines.push(`  ${s.progress.phase} ${s.progress.percent}% (${s.progress.bytesDone}${s.progress.bytesTotal ? `/${s.progress.bytesTotal}` : ''} bytes)`);
  if (s.lastPullBytes !== null) lines.push(`  last pull fetched ${s.lastPullBytes} bytes`);
  if (s.policyProblem) lines.push(`  fleet policy ignored: ${s.policyProblem}`);
  if (s.lastError) lines.push(`  last error: ${s.lastError.message}`, ...(s.lastError.details ?? []).map((d) => `    ${d}`));
  return lines.join('\n');
}

const busy = (s: ImageUpdateStatus) => ['checking', 'downloading', 'verifying', 'deploying'].includes(s.state);

/** Runs one `tabula image …` / `tabula fleet poll` command; returns the exit code. */
export async function runImageCommand(client: ApiClient, words: string[], json: boolean): Promise<number> {
  const sub = words.join(' ');
  if (sub === 'image status') {
    const s = await client.call('image.status', {});
    console.log(json ? JSON.stringify(s, null, 2) : formatImageStatus(s));
    return 0;
  }
  if (sub === 'image check') {
    const s = await client.call('image.check', {});
    console.log(json ? JSON.stringify(s, null, 2) : formatImageStatus(s));
    return s.state === 'failed' || s.state === 'offline' || s.state === 'stale' ? 1 : 0;
  }
  if (sub === 'image pull') {
    await client.call('image.pull', {});
    // Follow by polling: simple, and correct whatever events were missed.
    let s = await client.call('image.status', {});
    for (let i = 0; i < 3600 * 5 && (busy(s) || i < 2); i++) {
      if (s.progress && process.stderr.isTTY) process.stderr.write(`\r${s.progress.phase} ${s.progress.percent}%   `);
      await new Promise((r) => setTimeout(r, 200));
      s = await client.call('image.status', {});
    }
    if (process.stderr.isTTY) process.stderr.write('\n');
    console.log(json ? JSON.stringify(s, null, 2) : formatImageStatus(s));
    return s.state === 'failed' || s.state === 'offline' || s.state === 'stale' ? 1 : 0;
  }
  if (sub === 'image rollback') {
    const s = await client.call('image.rollback', {});
    console.log(json ? JSON.stringify(s, null, 2) : formatImageStatus(s));
    return 0;
  }
  if (sub === 'fleet poll') {
    const { record } = await client.call('fleet.poll', {});
    console.log(json ? JSON.stringify(record, null, 2) : record ? `${record.verb} (${record.nonce.slice(0, 8)}…): ${record.outcome} — ${record.message}` : 'No command for this machine.');
    return record && record.outcome !== 'done' ? 1 : 0;
  }
  return 64;
}

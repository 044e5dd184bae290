// Runs a user-level system tool (lpstat, xrandr, nmcli…) with an argument array, never a shell,
// in the C locale so its output can be parsed. A missing tool is an expected failure, not a crash.
import { execFile } from 'node:child_process';

export interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runTool(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string } = {},
): Promise<ToolResult & { missing: boolean }> {
  return new Promise((resolve) => {
    const child = execFile(
      cmd,
      args,
      { env: { ...(opts.env ?? process.env), LC_ALL: 'C', LANG: 'C' }, timeout: opts.timeoutMs ?? 20_000, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const e = err as (NodeJS.ErrnoException & { code?: number | string }) | null;
        if (e && e.code === 'ENOENT') return resolve({ code: 127, stdout: '', stderr: '', missing: true });
        const code = e ? (typeof e.code === 'number' ? e.code : 1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr), missing: false });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** The first meaningful line of a tool's complaint, for a message a person reads. */
export function firstLine(text: string): string {
  return text.split('\n').map((l) => l.trim()).find(Boolean) ?? '';
}

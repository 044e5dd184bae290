// How the agent reaches tabula-helper: as root (tests, a root session) it runs the helper directly;
// otherwise through pkexec, so polkit decides (assets/polkit/org.tabula.helper.policy).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { ImageUpdateProgress } from '../../common/contract/image';
import { TabulaError } from '../../common/errors';
import { MAX_HELPER_LINE, parseHelperMessage, resultVerbFor, STAGE_FAILED_EXIT, type HelperResult } from './helper-protocol';

export const installedHelper = '/usr/libexec/tabula/tabula-helper';

export interface HelperClient {
  /** `input`: written to the helper's stdin (a signed fleet command for `reimage-signed`). */
  run(args: string[], onProgress?: (p: ImageUpdateProgress) => void, input?: string): Promise<HelperResult>;
}

export function createHelperClient(opts: { env?: NodeJS.ProcessEnv; helperScript?: string } = {}): HelperClient {
  const env = opts.env ?? process.env;
  return {
    run(args, onProgress, input) {
      const asRoot = process.getuid?.() === 0;
      const script = opts.helperScript ?? path.join(__dirname, 'helper.js');
      const [cmd, argv] = asRoot ? [process.execPath, [script, ...args]] : ['pkexec', [installedHelper, ...args]];
      if (asRoot && !fs.existsSync(script)) return Promise.reject(new TabulaError('helper-failed', `tabula-helper is not built (${script}).`));
      return new Promise((resolve, reject) => {
        const child = spawn(cmd, argv, { env, stdio: ['pipe', 'pipe', 'pipe'] });
        child.stdin.on('error', () => {}); // a helper that exits before reading says why on stdout
        child.stdin.end(input ?? '');
        let pending = '';
        let stderr = '';
        let outcome: { result?: HelperResult; error?: TabulaError } = {};
        /** Set once the output broke the protocol: the call fails with it, whatever came before or after. */
        let broken: TabulaError | null = null;
        const take = (line: string) => {
          if (broken || line === '') return;
          try {
            const msg = parseHelperMessage(line);
            if (outcome.result || outcome.error) throw new TabulaError('helper-failed', 'tabula-helper went on after its answer; nothing of that answer was used.');
            if (msg.type === 'progress') onProgress?.(msg.progress);
            else if (msg.type === 'error') outcome = { error: TabulaError.fromInfo(msg.error) };
            else if (msg.result.verb !== resultVerbFor(args[0] ?? '')) throw new TabulaError('helper-failed', `tabula-helper answered "${msg.result.verb}" when asked to ${args[0]}; nothing of that answer was used.`);
            else outcome = { result: msg.result };
          } catch (err) {
            broken = err instanceof TabulaError ? err : new TabulaError('helper-failed', String(err));
          }
        };
        child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
          const lines = (pending + chunk).split('\n');
          pending = lines.pop()!;
          for (const line of lines) take(line);
          if (pending.length > MAX_HELPER_LINE) {
            take(pending); // refused for its length
            pending = '';
          }
        });
        child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr = (stderr + c).slice(-4000)));
        child.on('error', (err) => reject(new TabulaError('helper-failed', `tabula-helper could not be started (${err.message}).`)));
        child.on('close', (code) => {
          take(pending); // a last line without its newline
          if (broken) return reject(broken);
          // A pull that failed at staging exits so, and its result holds the check to record and the reason.
          const stageFailed = outcome.result?.verb === 'pull' && !!outcome.result.stageFailed && code === STAGE_FAILED_EXIT;
          if (outcome.result && (code === 0 || stageFailed)) return resolve(outcome.result);
          if (outcome.error) return reject(outcome.error);
          // pkexec: 126 = the person dismissed the authentication dialog, 127 = not authorised.
          if (!asRoot && code === 126) return reject(new TabulaError('cancelled', 'The administrator authentication was cancelled; nothing was changed.', { retryable: true }));
          if (!asRoot && code === 127) return reject(new TabulaError('unauthorized', 'You are not allowed to do this on this computer (polkit refused). Ask your helpdesk.'));
          reject(new TabulaError('helper-failed', `tabula-helper stopped unexpectedly (exit ${code})${stderr ? `: ${stderr.trim().split('\n').at(-1)}` : ''}.`));
        });
      });
    },
  };
}

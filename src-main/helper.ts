// tabula-helper: the only code that runs as root. Reached through pkexec (polkit policy in
// assets/polkit/), or run directly by root. A closed verb set, no shell, no path from the caller:
// what to pull and from where comes from the image's own config. Speaks JSON lines on stdout:
// {"type":"progress",...} while working, then one {"type":"result"} or {"type":"error"}.
import { toErrorInfo, TabulaError } from './common/errors';
import { parseJsonDocument } from './core/atomic-file';
import { signedCommandSchema, type SignedCommand } from './core/fleet-command';
import { readMachineId, readPrimaryMac } from './core/helpdesk/identity';
import { encodeHelperMessage, STAGE_FAILED_EXIT, type HelperMessage } from './core/image/helper-protocol';
import { parseHelperArgs, runHelperVerb } from './core/image/helper-verbs';

const emit = (msg: HelperMessage) => process.stdout.write(encodeHelperMessage(msg));

async function main() {
  if (process.getuid?.() !== 0) throw new TabulaError('helper-failed', 'tabula-helper must run as root (through pkexec).');
  // pkexec passes on the caller's umask (the agent's is 077): what root lays down here is system
  // state (deployments that become `/`, boot entries), readable as the image says; secrets are
  // written with their own mode.
  process.umask(0o022);
  const req = parseHelperArgs(process.argv.slice(2));
  // Under pkexec the environment is the caller's to shape: ignore it. Only root calling directly
  // (tests, an admin) may point the helper at another system root.
  const root = process.env.PKEXEC_UID === undefined && process.env.TABULA_ROOT ? process.env.TABULA_ROOT : '/';
  // reimage-signed: the fleet command arrives on stdin (capped; hostile until verified).
  const signed = req.verb === 'reimage-signed' ? await readSignedCommand() : undefined;
  let last = 0;
  const result = await runHelperVerb(
    { ...req, signed },
    root,
    (p) => {
      const now = Date.now();
      if (now - last < 200 && p.percent < 100) return;
      last = now;
      emit({ type: 'progress', progress: p });
    },
    { machineId: readMachineId(root), primaryMac: readPrimaryMac() },
  );
  emit({ type: 'result', result });
  // A pull that checked but could not stage failed, for whoever runs it (a fleet script): the result
  // line carries the check and the reason, and a person at a terminal reads the reason on stderr.
  if (result.verb === 'pull' && result.stageFailed) {
    process.stderr.write(`tabula-helper: ${result.stageFailed.message}\n`);
    return STAGE_FAILED_EXIT;
  }
  return 0;
}

async function readSignedCommand(): Promise<SignedCommand> {
  const max = 200 * 1024;
  let text = '';
  for await (const chunk of process.stdin) {
    text += (chunk as Buffer).toString('utf8');
    if (text.length > max) throw new TabulaError('command-rejected', 'The signed fleet command on standard input is too large: rejected.');
  }
  const parsed = parseJsonDocument(Buffer.from(text, 'utf8'), signedCommandSchema);
  if (!parsed.ok) throw new TabulaError('command-rejected', `reimage-signed expects {"command","signature"} as JSON on standard input; what came ${parsed.problem}: rejected.`);
  return parsed.value;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    const info = toErrorInfo(err);
    emit({ type: 'error', error: info });
    process.exit(info.code === 'invalid-argument' ? 64 : 1);
  },
);

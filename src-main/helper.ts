// tabula-helper: the only code that runs as root. Reached through pkexec (polkit policy in
// assets/polkit/), or run directly by root. A closed verb set, no shell, no path from the caller:
// what to pull and from where comes from the image's own config. Speaks JSON lines on stdout:
// {"type":"progress",...} while working, then one {"type":"result"} or {"type":"error"}.
import { toErrorInfo, TabulaError } from './common/errors';
import { encodeHelperMessage, type HelperMessage } from './core/image/helper-protocol';
import { parseHelperArgs, runHelperVerb } from './core/image/helper-verbs';

const emit = (msg: HelperMessage) => process.stdout.write(encodeHelperMessage(msg));

async function main() {
  if (process.getuid?.() !== 0) throw new TabulaError('helper-failed', 'tabula-helper must run as root (through pkexec).');
  const req = parseHelperArgs(process.argv.slice(2));
  // Under pkexec the environment is the caller's to shape: ignore it. Only root calling directly
  // (tests, an admin) may point the helper at another system root.
  const root = process.env.PKEXEC_UID === undefined && process.env.TABULA_ROOT ? process.env.TABULA_ROOT : '/';
  let last = 0;
  const result = await runHelperVerb(req, root, (p) => {
    const now = Date.now();
    if (now - last < 200 && p.percent < 100) return;
    last = now;
    emit({ type: 'progress', progress: p });
  });
  emit({ type: 'result', result });
}

main().then(
  () => process.exit(0),
  (err) => {
    const info = toErrorInfo(err);
    emit({ type: 'error', error: info });
    process.exit(info.code === 'invalid-argument' ? 64 : 1);
  },
);

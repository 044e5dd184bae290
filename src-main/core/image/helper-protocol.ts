// The tabula-helper protocol, once, for both ends: the helper (root) writes JSON lines on stdout,
// {"type":"progress"} while it works, then one {"type":"result"} or {"type":"error"}; the agent reads
// them through these schemas (unknown keys are dropped, never used). The agent treats the other end as hostile all the same (a replaced
// binary, a pkexec agent that prints, a crash halfway through a line): a line that is not the
// protocol ends the call with a clear error, and nothing of that reply is used.
import { z } from 'zod';
import type { DeploymentsStatus, ImageDeployment, ImageUpdateProgress } from '../../common/contract/image';
import { errorCodes, TabulaError, type ErrorInfo } from '../../common/errors';

/** No honest message comes near this; a longer line (or a reply without newlines) is refused. */
export const MAX_HELPER_LINE = 256 * 1024;

const text = (max = 4096) => z.string().max(max);
const deployment: z.ZodType<ImageDeployment> = z.object({ version: text(200), checksum: text(200).nullable() });
const deployments: z.ZodType<DeploymentsStatus> = z
  .object({
    backend: z.enum(['none', 'ostree', 'rsync-tree']),
    booted: deployment.nullable(),
    staged: deployment.nullable(),
    rollback: deployment.nullable(),
    reimagePending: z.boolean(),
    failedBoot: z.object({ version: text(200), bootedInstead: text(200) }).nullable().optional(),
  });
const serverData = z.object({ serial: z.number().int().min(0), expires: text(100) });
const progress: z.ZodType<ImageUpdateProgress> = z
  .object({
    phase: z.enum(['downloading', 'verifying', 'deploying']),
    bytesDone: z.number().min(0),
    bytesTotal: z.number().min(0).nullable(),
    percent: z.number().min(0).max(100),
    version: text(200).optional(),
  });

const errorSchema: z.ZodType<ErrorInfo> = z
  .object({ code: z.enum(errorCodes), message: text(), retryable: z.boolean(), details: z.array(text(1000)).max(200).optional() });

const resultSchema = z.discriminatedUnion('verb', [
  z.object({ verb: z.literal('status'), deployments, available: deployment.nullable(), serverData: serverData.nullable() }),
  z.object({ verb: z.literal('stage'), version: text(200), bytesReceived: z.number().min(0), deployments }),
  // `stageFailed`: the check held (its offer is `available`) but staging it failed; the agent records the check, then reports this.
  // The helper then exits with STAGE_FAILED_EXIT: a script that runs `tabula-helper pull` sees a failure.
  z.object({ verb: z.literal('pull'), deployments, available: deployment.nullable(), serverData: serverData.nullable(), pulled: z.object({ version: text(200), bytesReceived: z.number().min(0) }).nullable(), stageFailed: errorSchema.optional() }),
  z.object({ verb: z.literal('reimage'), version: text(200), bytesReceived: z.number().min(0), note: text(1000).optional(), deployments }),
  z.object({ verb: z.literal('reimage-signed'), version: text(200), bytesReceived: z.number().min(0), note: text(1000).optional(), deployments }),
  z.object({ verb: z.literal('rollback'), deployments }),
]);
export type HelperResult = z.infer<typeof resultSchema>;

/** tabula-helper's exit code after a pull whose check held and whose staging failed (its result line says why). */
export const STAGE_FAILED_EXIT = 1;

const messageSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('progress'), progress }),
  z.object({ type: z.literal('result'), result: resultSchema }),
  z.object({ type: z.literal('error'), error: errorSchema }),
]);
export type HelperMessage = z.infer<typeof messageSchema>;

/** The helper's side: one message, one line, through the same schema (so it never sends what the agent refuses). */
export function encodeHelperMessage(msg: HelperMessage): string {
  const checked = messageSchema.safeParse(msg);
  if (checked.success) return JSON.stringify(checked.data) + '\n';
  const issue = checked.error.issues[0]!;
  const error: ErrorInfo = { code: 'internal', message: `tabula-helper could not put its answer into words (${issue.path.join('.')}: ${issue.message}).`, retryable: false };
  return JSON.stringify({ type: 'error', error }) + '\n';
}

/** The agent's side: one line of the helper's output, checked; throws helper-failed naming what was wrong. */
export function parseHelperMessage(line: string): HelperMessage {
  const refuse = (why: string) => new TabulaError('helper-failed', `tabula-helper answered something that is not its protocol (${why}); nothing of that answer was used.`);
  if (line.length > MAX_HELPER_LINE) throw refuse(`a line of ${line.length} characters`);
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch {
    throw refuse(`not JSON: ${JSON.stringify(line.slice(0, 60))}`);
  }
  const parsed = messageSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw refuse(`${issue.path.join('.') || 'the message'}: ${issue.message}`);
  }
  return parsed.data;
}

/** The verb a result must carry for the verb asked (`check` answers with the status). */
export const resultVerbFor = (asked: string): HelperResult['verb'] | null =>
  asked === 'check' ? 'status' : asked === 'status' || asked === 'stage' || asked === 'pull' || asked === 'reimage' || asked === 'reimage-signed' || asked === 'rollback' ? asked : null;

/** Same image: by checksum where both have one (ostree), else by version (rsync-tree). */
export const sameImage = (a: ImageDeployment | null | undefined, b: ImageDeployment | null | undefined) =>
  !!a && !!b && (a.checksum && b.checksum ? a.checksum === b.checksum : a.version === b.version);

/**
 * Whether a pull stages the offer: it is not what the next boot starts already, and not the
 * version that failed to start here (a newer one is staged). The one rule for the agent's check and
 * the helper's `pull`, so one helper run decides as two did.
 */
export const offerIsNew = (available: ImageDeployment | null, d: DeploymentsStatus): boolean =>
  !!available && !sameImage(available, d.staged ?? d.booted) && available.version !== d.failedBoot?.version;

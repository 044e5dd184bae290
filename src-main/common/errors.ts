// Expected failures are typed errors with a code, a message written for a person, and whether a retry
// can help. They cross every transport as plain JSON (ErrorInfo) and are rebuilt on the other side.

export const errorCodes = [
  'invalid-argument',
  'unknown-method',
  'unauthorized',
  'already-running',
  'not-running',
  'storage-unreachable',
  'storage-auth-failed',
  'storage-permission',
  'storage-full',
  'storage-invalid',
  'files-unreadable',
  'rsync-missing',
  'cancelled',
  'sync-refused',
  'agent-unreachable',
  'internal',
  'unsafe-folder',
  // Preferences (issue 5)
  'pref-locked',
  'prefs-invalid',
  'keyring-unavailable',
  'keyring-locked',
  'tool-missing',
  // OS images and fleet commands (issue 4)
  'image-not-configured',
  'image-unreachable',
  'image-invalid',
  'signature-invalid',
  'reimage-refused',
  'helper-failed',
  'command-rejected',
  // The update server's data is older than what was accepted before, or has expired (issue 12).
  'image-stale',
] as const;
export type ErrorCode = (typeof errorCodes)[number];

export interface ErrorInfo {
  code: ErrorCode;
  message: string;
  retryable: boolean;
  /** Extra lines for a person (e.g. the files concerned), never a stack trace. */
  details?: string[];
  /** How many there are in all when `details` lists only the first of them (a refusal names 50 files). */
  detailsTotal?: number;
}

export class TabulaError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly details?: string[];
  readonly detailsTotal?: number;

  constructor(code: ErrorCode, message: string, opts: { retryable?: boolean; details?: string[]; detailsTotal?: number } = {}) {
    super(message);
    this.name = 'TabulaError';
    this.code = code;
    this.retryable = opts.retryable ?? false;
    if (opts.details) this.details = opts.details;
    if (opts.detailsTotal !== undefined) this.detailsTotal = opts.detailsTotal;
  }

  toInfo(): ErrorInfo {
    return { code: this.code, message: this.message, retryable: this.retryable, ...(this.details ? { details: this.details } : {}), ...(this.detailsTotal !== undefined ? { detailsTotal: this.detailsTotal } : {}) };
  }

  static fromInfo(info: ErrorInfo): TabulaError {
    return new TabulaError(info.code, info.message, { retryable: info.retryable, details: info.details, detailsTotal: info.detailsTotal });
  }
}

/** Anything thrown becomes ErrorInfo; unexpected errors are bugs and say so without leaking internals. */
export function toErrorInfo(err: unknown): ErrorInfo {
  if (err instanceof TabulaError) return err.toInfo();
  const text = err instanceof Error ? err.message : String(err);
  return { code: 'internal', message: `Something went wrong inside Tabula: ${text}`, retryable: false };
}

export function isErrorInfo(value: unknown): value is ErrorInfo {
  const v = value as ErrorInfo | null;
  return !!v && typeof v === 'object' && typeof v.message === 'string' && (errorCodes as readonly string[]).includes(v.code);
}

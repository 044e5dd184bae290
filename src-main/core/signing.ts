// ed25519 signatures for everything the fleet publishes (rsync-tree manifests, channel files,
// per-machine commands), with Node's crypto: no extra dependency. A signature is detached
// (`FILE.sig`, base64) and covers the exact bytes of FILE, so nothing is re-serialised before checking.
import crypto from 'node:crypto';
import type { z } from 'zod';
import { TabulaError, type ErrorCode } from '../common/errors';
import { parseJsonDocument } from './atomic-file';

export interface KeyPair {
  /** PKCS#8 PEM: the secret the fleet admin keeps. */
  privateKeyPem: string;
  /** The raw 32-byte public key in base64: what the image config lists in `fleet.trustedKeys`. */
  publicKey: string;
}

export function generateKeyPair(): KeyPair {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');
  return { privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), publicKey: rawPublicKey(publicKey) };
}

function rawPublicKey(key: crypto.KeyObject): string {
  // The SPKI DER of an ed25519 key ends with the 32 raw bytes.
  return key.export({ type: 'spki', format: 'der' }).subarray(-32).toString('base64');
}

export function publicKeyOf(privateKeyPem: string): string {
  return rawPublicKey(crypto.createPublicKey(privateKeyPem));
}

export function sign(data: Buffer | string, privateKeyPem: string): string {
  let key: crypto.KeyObject;
  try {
    key = crypto.createPrivateKey(privateKeyPem);
  } catch {
    throw new TabulaError('invalid-argument', 'The signing key could not be read: it is not a PEM private key (make one with `tabula-fleet keygen`).');
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new TabulaError('invalid-argument', `The signing key is ${key.asymmetricKeyType}, not ed25519.`);
  return crypto.sign(null, Buffer.from(data), key).toString('base64');
}

const spkiPrefix = Buffer.from('302a300506032b6570032100', 'hex');

function publicKeyObject(raw: string): crypto.KeyObject | null {
  const bytes = Buffer.from(raw.trim(), 'base64');
  if (bytes.length !== 32) return null;
  try {
    return crypto.createPublicKey({ key: Buffer.concat([spkiPrefix, bytes]), format: 'der', type: 'spki' });
  } catch {
    return null;
  }
}

/** True when `signature` (base64) over `data` was made by one of `trustedKeys`. Never throws. */
export function verify(data: Buffer | string, signature: string, trustedKeys: readonly string[]): boolean {
  const sig = Buffer.from(signature.trim(), 'base64');
  if (sig.length !== 64) return false;
  return trustedKeys.some((raw) => {
    const key = publicKeyObject(raw);
    return !!key && crypto.verify(null, Buffer.from(data), key, sig);
  });
}

export type KeyRole = 'image' | 'command';
const roleKeys: Record<KeyRole, { setting: string; what: string }> = {
  image: { setting: 'fleet.trustedKeys', what: 'images, channels and the policy' },
  command: { setting: 'fleet.commandKeys', what: 'fleet commands' },
};

/**
 * Throws a person-readable error unless the detached signature is good. `what` names the file;
 * `role` says which of the configured key sets may sign it (keys have roles, as in TUF).
 */
export function requireSignature(data: Buffer | string, signature: string | null, trustedKeys: readonly string[], what: string, role: KeyRole = 'image'): void {
  const r = roleKeys[role];
  if (!trustedKeys.length) {
    throw new TabulaError('signature-invalid', `No fleet key for ${r.what} is configured in the image (${r.setting}), so ${what} cannot be trusted.`);
  }
  if (signature === null) throw new TabulaError('signature-invalid', `${what} has no signature: refused.`);
  if (!verify(data, signature, trustedKeys)) {
    throw new TabulaError('signature-invalid', `${what} is not signed by a fleet key this machine trusts for ${r.what} (tampered, or signed with another key): refused.`);
  }
}

/**
 * The one way a signed document from the fleet becomes a value: the signature over the exact bytes
 * first (signature-invalid), then JSON and the schema (`code`, naming what is wrong). `what` names the
 * document ("The fleet policy"); `then` ends the sentence (" It is ignored.", ": rejected.").
 */
export function parseSignedJson<T>(
  bytes: Buffer,
  signature: string | null,
  trustedKeys: readonly string[],
  schema: z.ZodType<T>,
  o: { what: string; role?: KeyRole; code: ErrorCode; then: string },
): T {
  requireSignature(bytes, signature, trustedKeys, o.what, o.role);
  const parsed = parseJsonDocument(bytes, schema);
  if (!parsed.ok) throw new TabulaError(o.code, `${o.what} ${parsed.problem}${o.then}`);
  return parsed.value;
}

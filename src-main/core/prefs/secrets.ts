// Secrets (Wi-Fi keys, VPN keys, storage credentials) live in the OS keyring through keytar, never
// in a plain file. keytar answers null both for "no such secret" and for a locked keyring, so a null
// is followed by asking the Secret Service whether the default collection is locked.
import { TabulaError } from '../../common/errors';
import { runTool } from './run-tool';

type Keytar = typeof import('keytar');
export const SECRET_SERVICE = 'tabula';

let keytarModule: Promise<Keytar> | null = null;
const loadKeytar = () => (keytarModule ??= import('keytar').then((m) => ((m as { default?: Keytar }).default ?? m) as Keytar));

function keyringError(err: unknown, doing: string): TabulaError {
  const text = err instanceof Error ? err.message : String(err);
  if (/not provided by any \.service|ServiceUnknown|org\.freedesktop\.secrets|Cannot autolaunch|DBUS_SESSION_BUS_ADDRESS|connect to the bus/i.test(text)) {
    return new TabulaError(
      'keyring-unavailable',
      `No keyring is running in this session, so Tabula cannot ${doing}. Secrets are only kept in the keyring (GNOME Keyring or KWallet), never in a plain file: log in to a desktop session with a keyring and try again.`,
      { retryable: true },
    );
  }
  if (/locked/i.test(text)) {
    return new TabulaError('keyring-locked', `Your keyring is locked, so Tabula cannot ${doing}. Unlock it (log in again or open "Passwords and Keys") and try again.`, { retryable: true });
  }
  return new TabulaError('internal', `The keyring refused to ${doing}: ${text}`);
}

/** true/false from the Secret Service; null when that cannot be asked (no gdbus). */
async function defaultCollectionLocked(env?: NodeJS.ProcessEnv): Promise<boolean | null> {
  const r = await runTool(
    'gdbus',
    ['call', '--session', '--dest', 'org.freedesktop.secrets', '--object-path', '/org/freedesktop/secrets/aliases/default', '--method', 'org.freedesktop.DBus.Properties.Get', 'org.freedesktop.Secret.Collection', 'Locked'],
    { env, timeoutMs: 5000 },
  );
  if (r.missing) return null;
  if (r.code !== 0) {
    if (/ServiceUnknown|not provided by any|Could not connect|Cannot autolaunch/i.test(r.stderr)) throw keyringError(new Error('ServiceUnknown'), 'read the secret');
    return null; // no default collection yet: nothing was ever saved, so nothing is locked away
  }
  return /true/.test(r.stdout);
}

export function createSecrets(opts: { env?: NodeJS.ProcessEnv } = {}) {
  return {
    async set(account: string, secret: string): Promise<void> {
      const keytar = await loadKeytar();
      try {
        await keytar.setPassword(SECRET_SERVICE, account, secret);
      } catch (err) {
        throw keyringError(err, 'save the secret');
      }
    },
    /** The secret, or null when there is none. Throws keyring-locked / keyring-unavailable rather than a silent null. */
    async get(account: string): Promise<string | null> {
      const keytar = await loadKeytar();
      let value: string | null;
      try {
        value = await keytar.getPassword(SECRET_SERVICE, account);
      } catch (err) {
        throw keyringError(err, 'read the secret');
      }
      if (value !== null) return value;
      if (await defaultCollectionLocked(opts.env)) throw keyringError(new Error('locked'), 'read the secret');
      return null;
    },
    async remove(account: string): Promise<boolean> {
      const keytar = await loadKeytar();
      try {
        return await keytar.deletePassword(SECRET_SERVICE, account);
      } catch (err) {
        throw keyringError(err, 'remove the secret');
      }
    },
  };
}
export type Secrets = ReturnType<typeof createSecrets>;

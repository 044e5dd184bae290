// The signed fleet policy (policy.json + .sig next to the commands): which channel a machine
// follows and how often it checks, fleet-wide and per machine class. Read by the agent (schedule,
// status) and by tabula-helper (which channel to install): both verify it against the image's keys.
// A policy that is missing leaves the image config as it is; one that fails verification is ignored
// with a problem shown, never half-applied. Like a channel file it carries a growing `serial` and an
// `expires` time (see freshness.ts): an older or expired policy is refused. `pin` is the one way
// back to an older image: the fleet names the version, and signs that.
import { z } from 'zod';
import { TabulaError } from '../../common/errors';
import type { TabulaConfig } from '../config';
import { fetchFleetFiles } from '../fleet-source';
import { parseJsonDocument } from '../atomic-file';
import { parseSignedJson } from '../signing';
import { expiresSchema, serialSchema, type TrustStore } from './freshness';
import { versionPattern } from './manifest';

const settingsSchema = z
  .object({
    channel: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/).optional(),
    ostreeRef: z.string().regex(/^[A-Za-z0-9._/-]{1,200}$/).optional(),
    checkIntervalHours: z.number().min(0.05).max(24 * 30).optional(),
    windowMinutes: z.number().min(0).max(24 * 60).optional(),
    /** Install exactly this version, even when it is older than what the machine runs (a rollback). */
    pin: z.string().regex(versionPattern).optional(),
  })
  .strict();

export const policySchema = settingsSchema
  .extend({ format: z.literal('tabula-policy-1'), serial: serialSchema, expires: expiresSchema, classes: z.record(z.string(), settingsSchema).optional() })
  .strict();
export type FleetPolicy = z.infer<typeof policySchema>;

/** A policy about to be signed (tabula-fleet): JSON and the schema, nothing else. */
export function parsePolicy(bytes: Buffer): FleetPolicy {
  const parsed = parseJsonDocument(bytes, policySchema);
  if (!parsed.ok) throw new TabulaError('invalid-argument', `The fleet policy ${parsed.problem}.`);
  return parsed.value;
}

/** The config with the policy applied (fleet-wide, then the machine's class). */
export function applyPolicy(config: TabulaConfig, policy: FleetPolicy | null): TabulaConfig {
  if (!policy) return config;
  const pick = (p: z.infer<typeof settingsSchema>) => ({ channel: p.channel, ostreeRef: p.ostreeRef, checkIntervalHours: p.checkIntervalHours, windowMinutes: p.windowMinutes });
  const forClass = policy.classes?.[config.fleet.machineClass] ?? {};
  const defined = <T extends object>(o: T) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
  return { ...config, image: { ...config.image, ...defined(pick(policy)), ...defined(pick(forClass)) } };
}

/** The version the policy pins this machine's class to (the class wins over the fleet-wide pin). */
export function pinOf(config: TabulaConfig, policy: FleetPolicy | null): string | null {
  if (!policy) return null;
  return policy.classes?.[config.fleet.machineClass]?.pin ?? policy.pin ?? null;
}

/**
 * Fetches and verifies the policy. null when the fleet publishes none; throws when it cannot be
 * trusted. With `trust`, a policy older than (or as old as, but different from) the last one
 * accepted, or expired, is refused (image-stale) and the accepted serial recorded.
 */
export async function fetchPolicy(config: TabulaConfig, trust?: TrustStore): Promise<FleetPolicy | null> {
  if (!config.fleet.url) return null;
  const source = { url: config.fleet.url, sshOptions: config.image.sshOptions, connectTimeoutSeconds: config.image.connectTimeoutSeconds };
  const [bytes, sig] = await fetchFleetFiles(source, ['policy.json', 'policy.json.sig'], { maxBytes: 256 * 1024 });
  if (!bytes) return null;
  const policy = parseSignedJson(bytes, sig ? sig.toString('utf8') : null, config.fleet.trustedKeys, policySchema, { what: 'The fleet policy', code: 'image-invalid', then: '. It is ignored.' });
  trust?.accept('policy', 'fleet policy', bytes, { serial: policy.serial, expires: policy.expires });
  return policy;
}

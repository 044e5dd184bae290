// The signed fleet policy (policy.json + .sig next to the commands): which channel a machine
// follows and how often it checks, fleet-wide and per machine class. Read by the agent (schedule,
// status) and by tabula-helper (which channel to install): both verify it against the image's keys.
// A policy that is missing leaves the image config as it is; one that fails verification is ignored
// with a problem shown, never half-applied.
import { z } from 'zod';
import { TabulaError } from '../../common/errors';
import type { TabulaConfig } from '../config';
import { fetchFleetFiles } from '../fleet-source';
import { requireSignature } from '../signing';

const settingsSchema = z
  .object({
    channel: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/).optional(),
    ostreeRef: z.string().regex(/^[A-Za-z0-9._/-]{1,200}$/).optional(),
    checkIntervalHours: z.number().min(0.05).max(24 * 30).optional(),
    windowMinutes: z.number().min(0).max(24 * 60).optional(),
  })
  .strict();

export const policySchema = settingsSchema
  .extend({ format: z.literal('tabula-policy-1'), classes: z.record(z.string(), settingsSchema).optional() })
  .strict();
export type FleetPolicy = z.infer<typeof policySchema>;

export function parsePolicy(bytes: Buffer): FleetPolicy {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new TabulaError('invalid-argument', 'The fleet policy is not valid JSON.');
  }
  const parsed = policySchema.safeParse(json);
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    throw new TabulaError('invalid-argument', `The fleet policy has an invalid value at "${i.path.join('.') || '(top)'}": ${i.message}.`);
  }
  return parsed.data;
}

/** The config with the policy applied (fleet-wide, then the machine's class). */
export function applyPolicy(config: TabulaConfig, policy: FleetPolicy | null): TabulaConfig {
  if (!policy) return config;
  const fleetWide = { channel: policy.channel, ostreeRef: policy.ostreeRef, checkIntervalHours: policy.checkIntervalHours, windowMinutes: policy.windowMinutes };
  const forClass = policy.classes?.[config.fleet.machineClass] ?? {};
  const defined = <T extends object>(o: T) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
  return { ...config, image: { ...config.image, ...defined(fleetWide), ...defined(forClass) } };
}

/** Fetches and verifies the policy. null when the fleet publishes none; throws when it cannot be trusted. */
export async function fetchPolicy(config: TabulaConfig): Promise<FleetPolicy | null> {
  if (!config.fleet.url) return null;
  const source = { url: config.fleet.url, sshOptions: config.image.sshOptions, connectTimeoutSeconds: config.image.connectTimeoutSeconds };
  const [bytes, sig] = await fetchFleetFiles(source, ['policy.json', 'policy.json.sig'], { maxBytes: 256 * 1024 });
  if (!bytes) return null;
  requireSignature(bytes, sig ? sig.toString('utf8') : null, config.fleet.trustedKeys, 'The fleet policy');
  try {
    return parsePolicy(bytes);
  } catch (err) {
    throw new TabulaError('image-invalid', `${(err as Error).message} It is ignored.`);
  }
}

// A signed per-machine fleet command (reimage, pull, diagnostics), checked the same way wherever it
// is read: by the agent that polls for it (core/fleet/commands.ts) and by tabula-helper, which
// reimages only on a command it has verified itself (its own root-owned keys, machine-id, expiry,
// nonce record): the signature is what authorises a remote reimage, not the person at the machine.
import { z } from 'zod';
import type { MachineIdentity } from '../common/contract/helpdesk';
import { TabulaError } from '../common/errors';
import { parseSignedJson } from './signing';

export const commandSchema = z
  .object({
    format: z.literal('tabula-command-1'),
    machineId: z.string().regex(/^[0-9a-f]{32}$/),
    mac: z.string().regex(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/).optional(),
    verb: z.enum(['reimage', 'pull', 'diagnostics']),
    nonce: z.string().regex(/^[0-9a-f]{32}$/),
    issuedAt: z.string().datetime(),
    expiresAt: z.string().datetime(),
    /** reimage only: go ahead even with unsynced files in the home (the helpdesk took that decision). */
    overrideUnsynced: z.boolean().optional(),
  })
  .strict();
export type FleetCommand = z.infer<typeof commandSchema>;

/** A command as it arrived, handed to tabula-helper to check for itself: its exact bytes (base64) and signature. */
export interface SignedCommand {
  command: string;
  signature: string;
}
export const signedCommandSchema = z.object({ command: z.string().max(128 * 1024), signature: z.string().max(4096) }).strict();

const SKEW_MS = 5 * 60_000;
/** However long a command says it is valid, it is never run when issued longer ago than this. */
export const MAX_COMMAND_LIFETIME_MS = 30 * 24 * 3600_000;

/** Checks everything about a command's bytes; returns it or throws command-rejected. */
export function verifyFleetCommand(bytes: Buffer, sig: Buffer | null, o: { commandKeys: readonly string[]; identity: Pick<MachineIdentity, 'machineId' | 'primaryMac'>; now: number }): FleetCommand {
  let cmd: FleetCommand;
  try {
    cmd = parseSignedJson(bytes, sig ? sig.toString('utf8') : null, o.commandKeys, commandSchema, { what: 'The fleet command', role: 'command', code: 'command-rejected', then: ': rejected.' });
  } catch (err) {
    throw new TabulaError('command-rejected', (err as Error).message);
  }
  const me = o.identity;
  if (!me.machineId || cmd.machineId !== me.machineId) throw new TabulaError('command-rejected', 'The fleet command is for another machine: rejected.');
  if (cmd.mac && cmd.mac !== me.primaryMac) throw new TabulaError('command-rejected', `The fleet command names MAC ${cmd.mac}, this machine has ${me.primaryMac ?? 'none'}: rejected.`);
  if (Date.parse(cmd.expiresAt) <= o.now) throw new TabulaError('command-rejected', `The fleet command expired at ${cmd.expiresAt}: rejected.`);
  if (Date.parse(cmd.issuedAt) > o.now + SKEW_MS) throw new TabulaError('command-rejected', 'The fleet command is dated in the future: rejected (check the clocks).');
  if (o.now - Date.parse(cmd.issuedAt) > MAX_COMMAND_LIFETIME_MS) {
    throw new TabulaError('command-rejected', `The fleet command was issued at ${cmd.issuedAt}, more than 30 days ago: rejected (a command lives at most 30 days, whatever its expiry says).`);
  }
  return cmd;
}

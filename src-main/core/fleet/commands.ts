// Signed per-machine commands (reimage, pull, diagnostics) the agent polls next to the fleet
// policy: commands/<machine-id>.json with a detached ed25519 signature. Verified against the keys
// of the command role in the image config (fleet.commandKeys: an image-signing key cannot order a
// reimage), bound to this machine (machine-id, and MAC when given), rejected when expired, older
// than 30 days whatever it says, or when its nonce was seen before (the nonce is recorded before
// anything runs, and no command runs while that record cannot be read).
// A reimage refused because the home has files not on the storage yet is not spent: it waits, and
// is fetched and checked again in full (signature, machine, expiry, nonce) after every backup and
// at every poll, so it runs by itself once the files are safe, still at most once. Its nonce is
// spent when it runs, or when it expires while waiting.
import path from 'node:path';
import { z } from 'zod';
import type { FleetCommandRecord } from '../../common/contract/fleet';
import type { MachineIdentity } from '../../common/contract/helpdesk';
import { verifyFleetCommand, type FleetCommand, type SignedCommand } from '../fleet-command';
import { TabulaError, toErrorInfo } from '../../common/errors';
import type { EventLog } from '../../common/event-log';
import { createJsonStore, readJsonDocument, writeFileAtomic } from '../atomic-file';
import type { TabulaConfig } from '../config';
import { realClock, type Clock } from '../runtime/clock';
import { createExclusive, createSchedule } from '../runtime/schedule';
import type { Paths } from '../paths';
import { fetchFleetFile } from '../fleet-source';

export { commandSchema, MAX_COMMAND_LIFETIME_MS, type FleetCommand } from '../fleet-command';

/** Nonces are remembered well past the longest lifetime a command can have. */
const NONCE_MEMORY_MS = 90 * 24 * 3600_000;
const nonceSchema = z.record(z.string(), z.string());

export interface CommandActions {
  pull(): Promise<string>;
  diagnostics(): Promise<string>;
  /** `signed`: the command itself, for tabula-helper to verify before it reimages (no password asked). */
  reimage(override: boolean, signed: SignedCommand): Promise<string>;
  /** The waiting reimage will not run (expired, or no longer on the fleet server): say so where it was shown. */
  reimageWithdrawn?(message: string): void;
}

const waitingSchema = z.object({ nonce: z.string(), verb: z.literal('reimage'), receivedAt: z.string(), expiresAt: z.string() }).strict().nullable();
type Waiting = z.infer<typeof waitingSchema>;

export function createFleetCommands(deps: { paths: Paths; getSystemConfig: () => TabulaConfig; identity: () => MachineIdentity; events: EventLog; actions: CommandActions; clock?: Clock; reportProblem?: (m: string) => void }) {
  const clock = deps.clock ?? realClock;
  const noncesFile = path.join(deps.paths.stateDir, 'fleet-nonces.json');
  /**
   * The nonces of every command handled. Unlike other state there is no falling back to an older
   * copy: that copy lacks the latest nonce, and the latest command would run again. A record that
   * cannot be read refuses every command until a person repairs it.
   */
  const nonces = {
    load(): Record<string, string> {
      const r = readJsonDocument(noncesFile, nonceSchema);
      if (r.status === 'ok') return r.value;
      if (r.status === 'missing') return {};
      throw new TabulaError('command-rejected', `The record of fleet commands already run (${noncesFile}) ${r.problem}: every fleet command is refused until it is repaired, so that none can run twice.`);
    },
    save(value: Record<string, string>) {
      writeFileAtomic(noncesFile, JSON.stringify(value, null, 1) + '\n', 0o600);
    },
  };
  const log = createJsonStore(path.join(deps.paths.stateDir, 'fleet-commands.json'), z.array(z.object({ nonce: z.string(), verb: z.enum(['reimage', 'pull', 'diagnostics', 'unknown']), receivedAt: z.string(), outcome: z.enum(['done', 'refused', 'failed', 'rejected']), message: z.string(), waitingUntil: z.string().optional() })), () => []);
  // The reimage waiting for a backup. Only a reminder (what to look for again, and when to give up):
  // what runs is always the command as fetched and checked again, so a damaged copy loses nothing.
  const waitingStore = createJsonStore<Waiting>(path.join(deps.paths.stateDir, 'fleet-waiting.json'), waitingSchema, () => null);
  const logProblem = log.load().problem;
  if (logProblem) deps.reportProblem?.(`Fleet commands: ${logProblem}`);
  try {
    nonces.load();
  } catch (err) {
    deps.reportProblem?.(`Fleet commands: ${(err as Error).message}`);
  }
  // A poll asked for (the helpdesk, `tabula fleet poll`) while the timer's poll runs waits its turn:
  // two polls at once would both see the same command, and the second would log a false replay.
  const exclusive = createExclusive();
  const schedule = createSchedule({
    clock,
    policy: () => {
      const every = deps.getSystemConfig().fleet.commandPollMinutes * 60_000;
      // A fleet server that fails is asked less often (jittered), not more: it is down for every machine.
      return { intervalMs: every, windowMs: 0, deferOnMetered: false, minBatteryPercent: 0, backoffBaseMs: every, backoffMaxMs: 4 * every, deferRetryMs: every };
    },
    run: () => exclusive.run(pollOnce).then(() => true),
  });

  function record(r: FleetCommandRecord): FleetCommandRecord {
    log.save([...log.load().value, r].slice(-200));
    deps.events.publish('fleet-command-handled', r);
    return r;
  }

  /** A waiting reimage is looked at again at every poll: logged once, and again only when the reason changes. */
  function recordWaiting(r: FleetCommandRecord): FleetCommandRecord {
    const records = log.load().value;
    const last = records.at(-1);
    if (last?.nonce === r.nonce && last.outcome === 'refused' && last.waitingUntil) {
      if (last.message === r.message) return { ...r, receivedAt: last.receivedAt };
      log.save([...records.slice(0, -1), { ...r, receivedAt: last.receivedAt }]);
      deps.events.publish('fleet-command-handled', r);
      return r;
    }
    return record(r);
  }

  /** The waiting reimage will not run: expired (its nonce is spent), or the server no longer has it. */
  function stopWaiting(w: NonNullable<Waiting>, message: string, spend: boolean) {
    if (spend) {
      try {
        const seen = nonces.load();
        if (!seen[w.nonce]) nonces.save({ ...seen, [w.nonce]: new Date(clock.now()).toISOString() });
      } catch {
        /* an unreadable record refuses every command anyway */
      }
    }
    waitingStore.save(null);
    record({ nonce: w.nonce, verb: 'reimage', receivedAt: w.receivedAt, outcome: 'refused', message });
    deps.actions.reimageWithdrawn?.(message);
  }

  /** A command that stays on the server is seen at every poll: its rejection is logged once. */
  function recordRejection(nonce: string, verb: FleetCommandRecord['verb'], receivedAt: string, message: string): FleetCommandRecord {
    const r: FleetCommandRecord = { nonce, verb, receivedAt, outcome: 'rejected', message };
    const last = log.load().value.at(-1);
    if (last?.nonce === nonce && last.outcome === 'rejected' && last.message === message) return r;
    return record(r);
  }

  /** Checks everything about a command's bytes (core/fleet-command.ts); returns it or throws command-rejected. */
  const accept = (bytes: Buffer, sig: Buffer | null): FleetCommand => verifyFleetCommand(bytes, sig, { commandKeys: deps.getSystemConfig().fleet.commandKeys, identity: deps.identity(), now: clock.now() });

  async function pollOnce(): Promise<FleetCommandRecord | null> {
    const config = deps.getSystemConfig();
    const machineId = deps.identity().machineId;
    if (!config.fleet.url || !machineId) return null;
    let waiting = waitingStore.load().value;
    if (waiting && Date.parse(waiting.expiresAt) <= clock.now()) {
      // Spent now, so that a clock set back cannot make it valid again.
      stopWaiting(waiting, `The helpdesk's reimage request expired at ${waiting.expiresAt} while it waited for your files to be backed up: nothing was changed. The helpdesk can send a new one.`, true);
      waiting = null;
    }
    const source = { url: config.fleet.url, sshOptions: config.image.sshOptions, connectTimeoutSeconds: config.image.connectTimeoutSeconds };
    const rel = `commands/${machineId}.json`;
    const bytes = await fetchFleetFile(source, rel, { maxBytes: 64 * 1024 });
    if (!bytes) {
      if (waiting) stopWaiting(waiting, 'The helpdesk withdrew its reimage request (it is no longer on the fleet server): nothing was changed.', false);
      return null;
    }
    const sig = await fetchFleetFile(source, `${rel}.sig`, { maxBytes: 4096 });
    const receivedAt = new Date(clock.now()).toISOString();
    let cmd: FleetCommand;
    try {
      cmd = accept(bytes, sig);
    } catch (err) {
      const text = bytes.toString('utf8');
      const nonce = /"nonce"\s*:\s*"([0-9a-f]{32})"/.exec(text)?.[1] ?? 'unknown';
      // Logged as what it claimed to be (untrusted, so nothing ran), never as a pull it was not.
      // A waiting reimage stays waiting: a forged or broken file in its place withdraws nothing.
      const verb = (/"verb"\s*:\s*"(reimage|pull|diagnostics)"/.exec(text)?.[1] ?? 'unknown') as FleetCommandRecord['verb'];
      return recordRejection(nonce, verb, receivedAt, toErrorInfo(err).message);
    }
    if (waiting && waiting.nonce !== cmd.nonce) {
      stopWaiting(waiting, 'The helpdesk replaced its reimage request with another command: the earlier request will not run.', false);
      waiting = null;
    }
    let seen: Record<string, string>;
    try {
      seen = nonces.load();
    } catch (err) {
      return recordRejection(cmd.nonce, cmd.verb, receivedAt, toErrorInfo(err).message);
    }
    if (seen[cmd.nonce]) {
      if (waiting) waitingStore.save(null);
      return recordRejection(cmd.nonce, cmd.verb, receivedAt, `Replay: this command (nonce ${cmd.nonce.slice(0, 8)}…) was already handled at ${seen[cmd.nonce]}.`);
    }
    // Record the nonce first: a crash while running must not let the same command run twice.
    const now = clock.now();
    const kept = Object.fromEntries(Object.entries(seen).filter(([, at]) => now - Date.parse(at) < NONCE_MEMORY_MS));
    try {
      nonces.save({ ...kept, [cmd.nonce]: receivedAt });
    } catch (err) {
      return recordRejection(cmd.nonce, cmd.verb, receivedAt, `The record of fleet commands already run could not be written (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): the command was not run.`);
    }
    const firstSeen = waiting?.receivedAt ?? receivedAt;
    try {
      const message = cmd.verb === 'pull' ? await deps.actions.pull() : cmd.verb === 'diagnostics' ? await deps.actions.diagnostics() : await deps.actions.reimage(cmd.overrideUnsynced === true, { command: bytes.toString('base64'), signature: sig!.toString('utf8') });
      if (waiting) waitingStore.save(null);
      return record({ nonce: cmd.nonce, verb: cmd.verb, receivedAt: firstSeen, outcome: 'done', message });
    } catch (err) {
      const info = toErrorInfo(err);
      if (cmd.verb === 'reimage' && info.code === 'reimage-refused') {
        // Refused before anything ran (the home is not backed up yet): the nonce is given back and
        // the command waits. Were the record not writable, it stays spent: at most once comes first.
        try {
          nonces.save(kept);
          waitingStore.save({ nonce: cmd.nonce, verb: 'reimage', receivedAt: firstSeen, expiresAt: cmd.expiresAt });
          return recordWaiting({ nonce: cmd.nonce, verb: cmd.verb, receivedAt: firstSeen, outcome: 'refused', message: info.message, waitingUntil: cmd.expiresAt });
        } catch {
          /* recorded as refused below */
        }
      }
      if (waiting) waitingStore.save(null);
      return record({ nonce: cmd.nonce, verb: cmd.verb, receivedAt: firstSeen, outcome: info.code === 'reimage-refused' ? 'refused' : 'failed', message: info.message });
    }
  }

  return {
    poll: () => exclusive.run(pollOnce),
    history: () => log.load().value,
    /**
     * A reimage accepted here but stopped before anything ran (files saved during its countdown):
     * checked again, its nonce given back, and it waits for the backup like one refused at once.
     */
    requeue: (signed: SignedCommand, reason: string) =>
      exclusive.run(async () => {
        const bytes = Buffer.from(signed.command, 'base64');
        const receivedAt = new Date(clock.now()).toISOString();
        let cmd: FleetCommand;
        try {
          cmd = accept(bytes, Buffer.from(signed.signature, 'utf8'));
        } catch (err) {
          return recordRejection('unknown', 'reimage', receivedAt, toErrorInfo(err).message);
        }
        nonces.save(Object.fromEntries(Object.entries(nonces.load()).filter(([n]) => n !== cmd.nonce)));
        const firstSeen = log.load().value.find((r) => r.nonce === cmd.nonce)?.receivedAt ?? receivedAt;
        waitingStore.save({ nonce: cmd.nonce, verb: 'reimage', receivedAt: firstSeen, expiresAt: cmd.expiresAt });
        return recordWaiting({ nonce: cmd.nonce, verb: 'reimage', receivedAt: firstSeen, outcome: 'refused', message: reason, waitingUntil: cmd.expiresAt });
      }),
    /** The reimage waiting for a backup, if any (for a person: what it waits for is in the log). */
    waiting: () => waitingStore.load().value,
    /**
     * After a backup: a waiting reimage is fetched and checked again now rather than at the next
     * poll. Nothing is asked of the fleet server when nothing waits.
     */
    async retryWaiting(): Promise<FleetCommandRecord | null> {
      if (!waitingStore.load().value) return null;
      return exclusive.run(pollOnce);
    },
    start() {
      if (!deps.getSystemConfig().fleet.url) return;
      schedule.start(deps.getSystemConfig().fleet.commandPollMinutes * 60_000);
      // A reimage was waiting when the agent stopped: show it again (and run it if the home is safe now).
      if (waitingStore.load().value) void exclusive.run(pollOnce).catch(() => undefined);
    },
    /** No timer is left, and a poll under way when it stops does not arm one again. */
    stop: () => schedule.stop(),
  };
}
export type FleetCommands = ReturnType<typeof createFleetCommands>;

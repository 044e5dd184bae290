// Helpdesk reimage: a factory reset to the pristine current image, /etc and /var reset, home
// untouched. Refused while the home has changes that are not on the storage, unless the helpdesk
// overrides after seeing exactly what would be lost. The person at the machine sees a countdown and
// what will happen, and can stop it.
import fs from 'node:fs';
import path from 'node:path';
import type { MachineIdentity, ReimagePlan, ReimageStatus } from '../../common/contract/helpdesk';
import type { ImageUpdateStatus } from '../../common/contract/image';
import { TabulaError, toErrorInfo } from '../../common/errors';
import type { EventLog } from '../../common/event-log';
import { writeFileAtomic } from '../atomic-file';
import { realClock, type Clock } from '../runtime/clock';
import { createCountdown } from '../runtime/schedule';
import type { Paths } from '../paths';
import type { HomeSafety } from './home-safety';
import type { DesktopOpener } from '../desktop-open';
import type { SignedCommand } from '../fleet-command';

/** What the helpdesk needs of the image feature; the agent passes the image plug-in's service. */
export interface ImagePort {
  status(): ImageUpdateStatus;
  /**
   * Stages a pristine copy of the current image for the next boot. With `signed` (a fleet command)
   * tabula-helper checks the command itself and needs no password; without, polkit asks for an
   * administrator (the helpdesk at the machine).
   */
  reimage(signed?: SignedCommand): Promise<ImageUpdateStatus>;
}

export interface HelpdeskDeps {
  paths: Paths;
  events: EventLog;
  image: ImagePort;
  homeSafety: HomeSafety;
  identity: () => MachineIdentity;
  lastBackupAt: () => string | null;
  countdownSeconds: () => number;
  /** Everything worth a look for the diagnostics bundle. */
  diagnostics: () => object;
  /** Shows the diagnostics folder in the file manager. */
  opener?: DesktopOpener;
  /** A fleet reimage stopped at the end of its countdown because files were saved meanwhile: it waits again. */
  fleetReimageStopped?: (signed: SignedCommand, reason: string) => void;
  clock?: Clock;
}

/** Keys whose values never go into a bundle, at any depth (the keyring holds the real secrets anyway). */
const secretKey = /pass(word|phrase)?|secret|token|psk|private.?key|credential/i;
export function redactSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactSecrets);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, secretKey.test(k) ? '(removed)' : redactSecrets(v)]));
  }
  return value;
}

export function createHelpdeskService(deps: HelpdeskDeps) {
  const clock = deps.clock ?? realClock;
  const diagnosticsDir = path.join(deps.paths.stateDir, 'diagnostics');
  let status: ReimageStatus = { state: 'none', reason: 'No reset requested.', startsAt: null, origin: null };
  const countdown = createCountdown(clock);

  const set = (s: ReimageStatus) => {
    status = s;
    deps.events.publish('reimage-changed', s);
  };

  const steps = (version: string | null) => [
    `Download a fresh, verified copy of the current image${version ? ` (version ${version})` : ''}.`,
    'Restart: the computer starts from the fresh image; system settings (/etc) and system data (/var) are reset.',
    'Your home folder (documents, settings, mail) is not touched.',
  ];

  /** Why a reset cannot run now, or null. `advice`: what the person at the machine can do about it. */
  async function refusal(override: boolean, acknowledgedCount: number | undefined, advice = true): Promise<string | null> {
    const home = await deps.homeSafety.unsyncedChanges();
    if (home.unknownReason && !override) return home.unknownReason;
    const pending = home.count + home.queued;
    if (pending === 0) return null;
    if (!override) return `${home.count} ${home.count === 1 ? 'file in the home is' : 'files in the home are'} not on the storage yet${home.queued ? ` and a backup is waiting to run` : ''}${advice ? `: back ${home.count === 1 ? 'it' : 'them'} up first, or override after checking the list` : ''}.`;
    if (acknowledgedCount !== home.count) return `The list of unsynced files changed (now ${home.count}); check it again before overriding.`;
    return null;
  }

  async function plan(): Promise<ReimagePlan> {
    const image = deps.image.status();
    const home = await deps.homeSafety.unsyncedChanges();
    // The channel's version, unless it failed to start here: then the reset lays down the one running.
    const channel = image.available && image.available.version !== image.failedBoot?.version ? image.available.version : null;
    const version = channel ?? image.booted?.version ?? null;
    let refusedReason: string | null = null;
    if (image.backend === 'none') refusedReason = 'No image source is configured on this machine, so it cannot be reset.';
    else if (home.unknownReason) refusedReason = home.unknownReason;
    else if (home.count + home.queued > 0) refusedReason = `${home.count} ${home.count === 1 ? 'file in the home is' : 'files in the home are'} not on the storage yet${home.queued ? ' and a backup is waiting to run' : ''}.`;
    return { identity: deps.identity(), image, lastBackupAt: deps.lastBackupAt(), home, refusedReason, steps: steps(version), countdownSeconds: deps.countdownSeconds(), reimage: status };
  }

  const waitingReason = (why: string) => `Reimage requested by helpdesk — waiting for your files to be backed up: ${why} It runs by itself once they are on the storage; your home is kept.`;

  async function execute(origin: ReimageStatus['origin'], override: boolean, signed: SignedCommand | undefined) {
    // Look once more at the end of the countdown: a file saved meanwhile is not lost either.
    if (!override) {
      const fleet = origin === 'fleet-command' && signed;
      const why = await refusal(false, undefined, !fleet);
      if (why && fleet) {
        // Nothing ran: the fleet's command waits again for the backup instead of being used up.
        const reason = waitingReason(why);
        set({ state: 'waiting', reason, startsAt: null, origin });
        deps.fleetReimageStopped?.(signed, reason);
        return;
      }
      if (why) return set({ state: 'failed', reason: `Reset stopped: ${why}`, startsAt: null, origin });
    }
    set({ state: 'running', reason: 'Preparing the pristine image…', startsAt: null, origin });
    try {
      const after = await deps.image.reimage(signed);
      set({ state: 'done', reason: `The reset is ready: restart the computer to finish it. Your home folder stays as it is.${after.reimageNote ? ` ${after.reimageNote}` : ''}`, startsAt: null, origin });
    } catch (err) {
      set({ state: 'failed', reason: `The reset could not be prepared: ${toErrorInfo(err).message} Nothing was changed.`, startsAt: null, origin });
    }
  }

  return {
    status: () => status,
    plan,
    async reimage(args: { override?: boolean; acknowledgedCount?: number }, origin: ReimageStatus['origin'] = 'helpdesk', signed?: SignedCommand): Promise<ReimageStatus> {
      if (status.state === 'countdown' || status.state === 'running') throw new TabulaError('already-running', 'A reset is already under way.');
      if (deps.image.status().backend === 'none') throw new TabulaError('image-not-configured', 'No image source is configured on this machine, so it cannot be reset.');
      const fleet = origin === 'fleet-command';
      const why = await refusal(!!args.override, args.acknowledgedCount, !fleet);
      if (why) {
        const home = await deps.homeSafety.unsyncedChanges();
        if (!fleet) throw new TabulaError('reimage-refused', `Reset refused: ${why}`, { details: home.paths.slice(0, 50) });
        // The fleet keeps the command waiting (core/fleet/commands.ts) and tries again after the backup.
        const reason = waitingReason(why);
        set({ state: 'waiting', reason, startsAt: null, origin });
        throw new TabulaError('reimage-refused', reason, { details: home.paths.slice(0, 50) });
      }
      const seconds = deps.countdownSeconds();
      const override = !!args.override;
      const startsAt = countdown.start(seconds * 1000, () => void execute(origin, override, signed));
      set({ state: 'countdown', reason: `This computer will be reset to the pristine image in ${seconds} seconds. Your home folder is kept.`, startsAt: new Date(startsAt).toISOString(), origin });
      return status;
    },
    /** The fleet's waiting reimage will not run (expired, withdrawn): say so instead of "waiting". */
    withdrawn(reason: string): void {
      if (status.state === 'waiting') set({ state: 'cancelled', reason, startsAt: null, origin: 'fleet-command' });
    },
    cancel(): ReimageStatus {
      if (status.state !== 'countdown') return status;
      countdown.cancel();
      set({ state: 'cancelled', reason: 'The reset was cancelled; nothing was changed.', startsAt: null, origin: status.origin });
      return status;
    },
    /** A JSON bundle in ~/.local/state/tabula/diagnostics/ (no secrets), for the helpdesk. */
    diagnostics(): { file: string; text: string } {
      const file = path.join(diagnosticsDir, `diagnostics-${new Date(clock.now()).toISOString().replace(/[:.]/g, '-')}.json`);
      fs.mkdirSync(diagnosticsDir, { recursive: true, mode: 0o700 });
      const text = JSON.stringify(redactSecrets({ createdAt: new Date(clock.now()).toISOString(), identity: deps.identity(), reimage: status, ...deps.diagnostics() }), null, 1) + '\n';
      writeFileAtomic(file, text, 0o600);
      return { file, text };
    },
    /** Shows the diagnostics folder in the file manager (made if it is not there yet). */
    async showDiagnostics(): Promise<{ opened: string }> {
      if (!deps.opener) throw new TabulaError('tool-missing', 'Opening folders is not available here.');
      fs.mkdirSync(diagnosticsDir, { recursive: true, mode: 0o700 });
      await deps.opener.open(diagnosticsDir);
      return { opened: diagnosticsDir };
    },
    stop() {
      countdown.stop();
    },
  };
}
export type HelpdeskService = ReturnType<typeof createHelpdeskService>;

// The agent's image service: status for window, tray and CLI; check/pull/rollback on request and on
// the scheduler's rhythm. All privileged work goes through tabula-helper; this side only keeps the
// state, the reasons and the progress, and remembers the last check across restarts.
import path from 'node:path';
import { z } from 'zod';
import type { DeploymentsStatus, ImageDeployment, ImageUpdateProgress, ImageUpdateState, ImageUpdateStatus } from '../../common/contract/image';
import { TabulaError, toErrorInfo, type ErrorInfo } from '../../common/errors';
import type { EventLog } from '../../common/event-log';
import { createJsonStore } from '../atomic-file';
import type { TabulaConfig } from '../config';
import { compareVersions, createTrustStore, staleReason } from './freshness';
import { applyPolicy, fetchPolicy, type FleetPolicy } from './policy';
import type { Paths } from '../paths';
import type { HelperClient } from './helper-client';
import type { HelperResult } from './helper-verbs';
import { offerIsNew, sameImage } from './helper-protocol';
import { realClock, type Clock } from '../runtime/clock';
import type { Probes } from '../runtime/probes';
import { transition } from '../runtime/state-machine';
import { createExclusive, createUpdateScheduler, type SchedulePolicy, type ScheduleTrigger } from '../runtime/schedule';
import type { SignedCommand } from '../fleet-command';

const depSchema = z.object({ version: z.string(), checksum: z.string().nullable() }).nullable();
const savedSchema = z.object({ lastCheckAt: z.string().nullable(), available: depSchema, lastPullBytes: z.number().nullable() });

export interface ImageServiceDeps {
  paths: Paths;
  /** The system layers only (image defaults + /etc): they decide the source and the keys. */
  getSystemConfig: () => TabulaConfig;
  events: EventLog;
  helper: HelperClient;
  probes: Probes;
  clock?: Clock;
  random?: () => number;
  reportProblem?: (message: string) => void;
}

export function policyFrom(config: TabulaConfig): SchedulePolicy {
  const img = config.image;
  return {
    intervalMs: img.checkIntervalHours * 3600_000,
    windowMs: img.windowMinutes * 60_000,
    deferOnMetered: img.deferOnMetered,
    minBatteryPercent: img.minBatteryPercent,
    backoffBaseMs: 5 * 60_000,
    backoffMaxMs: Math.max(5 * 60_000, img.checkIntervalHours * 3600_000),
    deferRetryMs: 15 * 60_000,
  };
}

export function createImageService(deps: ImageServiceDeps) {
  const clock = deps.clock ?? realClock;
  const iso = (t: number) => new Date(t).toISOString();
  const store = createJsonStore(path.join(deps.paths.stateDir, 'image.json'), savedSchema, () => ({ lastCheckAt: null, available: null, lastPullBytes: null }));
  const loaded = store.load();
  if (loaded.problem) deps.reportProblem?.(`Image state: ${loaded.problem}`);
  let saved = loaded.value;
  let deployments: DeploymentsStatus | null = null;
  // The signed fleet policy, refreshed before every check; it can set the channel and the schedule.
  let policy: FleetPolicy | null = null;
  let policyProblem: string | null = null;
  // The agent's own record of the newest policy it accepted (the helper keeps a root-owned one).
  const policyTrust = createTrustStore(path.join(deps.paths.stateDir, 'image-trust.json'), () => clock.now(), 0o600);
  const config = () => applyPolicy(deps.getSystemConfig(), policy);
  async function refreshPolicy() {
    try {
      policy = await fetchPolicy(deps.getSystemConfig(), policyTrust);
      policyProblem = null;
    } catch (err) {
      const info = toErrorInfo(err);
      // Offline: keep the last good policy. Older or expired: keep the last good one too (a replay
      // must not take the fleet's newer decisions away), and say so. Anything else: it cannot be
      // trusted, so none applies.
      if (info.code !== 'image-unreachable' && info.code !== 'image-stale') policy = null;
      policyProblem = info.code === 'image-unreachable' ? null : info.message;
    }
    status = { ...status, policyProblem };
  }

  let status: ImageUpdateStatus = {
    backend: config().image.backend,
    channel: config().image.channel,
    state: config().image.backend === 'none' ? 'disabled' : 'checking',
    reason: config().image.backend === 'none' ? 'No image source is configured on this machine (image.backend in the image config).' : 'Reading the installed image versions…',
    since: iso(clock.now()),
    booted: null,
    staged: null,
    available: saved.available,
    rollback: null,
    lastCheckAt: saved.lastCheckAt,
    nextCheckAt: null,
    progress: null,
    lastPullBytes: saved.lastPullBytes,
    restartRequired: false,
    reimagePending: false,
    lastError: null,
    policyProblem: null,
    serverData: null,
  };

  function setState(to: ImageUpdateState, reason: string, patch: Partial<ImageUpdateStatus> = {}) {
    const t = transition(status, to, reason, clock.now(), patch);
    status = t.status;
    deps.events.publish('image-state-changed', { ...t.change, status });
  }

  function applyDeployments(d: DeploymentsStatus) {
    deployments = d;
    status = { ...status, booted: d.booted, staged: d.staged, rollback: d.rollback, reimagePending: d.reimagePending, failedBoot: d.failedBoot ?? null, reimageNote: d.reimagePending ? (status.reimageNote ?? null) : null, restartRequired: !!d.staged || d.reimagePending };
  }

  /** The state to rest in when nothing is running. */
  function restingState(): [ImageUpdateState, string] {
    if (status.reimagePending) return ['staged', `A reset to the pristine image is ready: restart to finish it.${status.reimageNote ? ` ${status.reimageNote}` : ''}`];
    if (status.staged) return ['staged', `Version ${status.staged.version} is ready: restart to update.`];
    // A frozen server (its data expired) is never "up to date", whatever the versions say.
    if (status.serverData && Date.parse(status.serverData.expires) <= clock.now()) return ['stale', staleReason(status.serverData.expires)];
    const current = status.booted?.version ?? 'unknown';
    const failed = deployments?.failedBoot;
    if (failed) return ['idle', `Version ${failed.version} failed to start; you're back on ${failed.bootedInstead}.`];
    if (status.available && !sameImage(status.available, status.booted)) return ['idle', `Version ${status.available.version} is available (running ${current}).`];
    return ['idle', status.lastCheckAt ? `Up to date: version ${current}.` : `Running version ${current}; not checked yet.`];
  }

  function fail(err: unknown) {
    const info: ErrorInfo = toErrorInfo(err);
    const state: ImageUpdateState = info.code === 'image-unreachable' ? 'offline' : info.code === 'image-stale' ? 'stale' : 'failed';
    setState(state, info.message, { progress: null, lastError: info });
  }

  const onProgress = (p: ImageUpdateProgress) => {
    const phaseState: ImageUpdateState = p.phase;
    const reason = p.phase === 'downloading' ? `Downloading version ${p.version ?? status.available?.version ?? ''}…` : p.phase === 'verifying' ? 'Checking every file against the signed manifest…' : 'Preparing the new version for the next restart…';
    if (status.state !== phaseState) setState(phaseState, reason, { progress: p });
    else status = { ...status, progress: p };
    deps.events.publish('image-progress', p);
  };

  async function callHelper(args: string[], progress = false, input?: string): Promise<HelperResult> {
    const r = await deps.helper.run(args, progress ? onProgress : undefined, input);
    applyDeployments(r.deployments);
    if (r.verb === 'status' || r.verb === 'pull') status = { ...status, serverData: r.serverData };
    return r;
  }

  function checked(available: ImageDeployment | null) {
    saved = { ...saved, lastCheckAt: iso(clock.now()), available };
    store.save(saved);
    status = { ...status, available, lastCheckAt: saved.lastCheckAt };
  }

  function pulled(bytes: number | null) {
    saved = { ...saved, lastPullBytes: bytes };
    store.save(saved);
    status = { ...status, lastPullBytes: bytes };
  }

  /** One scheduled or requested round: check; pull and stage when something new is there. */
  async function checkAndMaybePull(trigger: ScheduleTrigger | 'pull'): Promise<boolean> {
    if (config().image.backend === 'none') {
      setState('disabled', 'No image source is configured on this machine (image.backend in the image config).');
      return true;
    }
    try {
      setState('checking', 'Asking the fleet server for the current version…', { lastError: null });
      await refreshPolicy();
      // The schedule never stages the newer version this laptop was rolled back from (still on disk
      // as the rollback, nothing staged): it would undo an administrator's rollback. The person's own
      // pull brings it back; an older one on offer (a signed pin going back) is staged as before.
      const rolledBackFrom = (offer: ImageDeployment | null) => !!offer && !status.staged && !!status.booted && sameImage(offer, status.rollback) && compareVersions(offer.version, status.booted.version) > 0;
      const mayUndoRollback = rolledBackFrom(status.rollback);
      if (trigger === 'pull' || (config().image.autoPull && !mayUndoRollback)) {
        // One helper run checks and, when the offer is new (offerIsNew), stages it: its progress
        // moves the state to downloading.
        const r = await callHelper(['pull'], true);
        if (r.verb === 'pull') {
          checked(r.available);
          if (r.stageFailed) throw TabulaError.fromInfo(r.stageFailed);
          if (r.pulled) pulled(r.pulled.bytesReceived);
        }
      } else {
        const r = await callHelper(['check']);
        const available = r.verb === 'status' ? r.available : null;
        checked(available);
        if (config().image.autoPull && offerIsNew(available, r.deployments) && !rolledBackFrom(available)) {
          setState('downloading', `Downloading version ${available!.version}…`, { progress: { phase: 'downloading', bytesDone: 0, bytesTotal: null, percent: 0 } });
          const staged = await callHelper(['stage'], true);
          pulled(staged.verb === 'stage' ? staged.bytesReceived : null);
        }
      }
      const [s, reason] = restingState();
      setState(s, reason, { progress: null });
      return true;
    } catch (err) {
      fail(err);
      return false;
    }
  }

  const scheduler = createUpdateScheduler({
    clock,
    random: deps.random,
    policy: () => policyFrom(config()),
    probes: deps.probes,
    lastCheckAt: saved.lastCheckAt ? Date.parse(saved.lastCheckAt) : null,
    run: (trigger) => exclusive(() => checkAndMaybePull(trigger)),
    onChange: ({ nextCheckAt, deferred }) => {
      status = { ...status, nextCheckAt: nextCheckAt === null ? null : iso(nextCheckAt) };
      if (deferred && status.state !== 'deferred') setState('deferred', deferred);
      else if (!deferred && status.state === 'deferred') setState(...restingState());
      else deps.events.publish('image-state-changed', { from: status.state, to: status.state, reason: status.reason, durationMs: 0, status });
    },
  });

  // The first read of the deployments (start) must land before anything that changes them.
  let ready: Promise<void> = Promise.resolve();

  // Check, pull, rollback and reimage run one at a time; one asked for meanwhile waits its turn.
  const queue = createExclusive();
  const exclusive = <T>(fn: () => Promise<T>): Promise<T> => queue.run(() => ready.then(fn));

  return {
    status(): ImageUpdateStatus {
      const s = { ...status, backend: config().image.backend, channel: config().image.channel, asOfEvent: deps.events.lastId() };
      // Data that expired while resting: shown as stale at once, not at the next check.
      if (s.state === 'idle' && s.serverData && Date.parse(s.serverData.expires) <= clock.now()) return { ...s, state: 'stale', reason: staleReason(s.serverData.expires) };
      return s;
    },
    deployments: () => deployments,
    /** Reads the deployments and arms the schedule. */
    async start() {
      if (config().image.backend === 'none') {
        setState('disabled', 'No image source is configured on this machine (image.backend in the image config).');
        return;
      }
      ready = callHelper(['status']).then(
        () => setState(...restingState()),
        (err) => fail(err),
      );
      await ready;
      scheduler.start();
    },
    async check(): Promise<ImageUpdateStatus> {
      await scheduler.requestNow();
      return this.status();
    },
    pull(): { started: boolean } {
      if (config().image.backend === 'none') throw new TabulaError('image-not-configured', 'No image source is configured on this machine.');
      void exclusive(() => checkAndMaybePull('pull'));
      return { started: true };
    },
    async rollback(): Promise<ImageUpdateStatus> {
      await exclusive(async () => {
        await callHelper(['rollback']);
        setState(...restingState());
      });
      return this.status();
    },
    /**
     * The helpdesk reimage (guarded by the caller): pristine deployment for the next boot. A signed
     * fleet command goes to the helper's `reimage-signed`, which verifies it itself (no password);
     * otherwise `reimage`, for which polkit asks for an administrator.
     */
    async reimage(signed?: SignedCommand): Promise<ImageUpdateStatus> {
      await exclusive(async () => {
        setState('downloading', 'Preparing a pristine copy of the current image…', { progress: null });
        try {
          const r = await callHelper(signed ? ['reimage-signed'] : ['reimage'], true, signed ? JSON.stringify(signed) : undefined);
          status = { ...status, reimageNote: (r.verb === 'reimage' || r.verb === 'reimage-signed') && r.note ? r.note : null };
        } catch (err) {
          fail(err);
          throw err;
        }
        setState(...restingState());
      });
      return this.status();
    },
    networkUp: () => scheduler.networkUp(saved.lastCheckAt ? Date.parse(saved.lastCheckAt) : null),
    whenIdle: () => queue.whenIdle(),
    stop: () => scheduler.stop(),
  };
}
export type ImageService = ReturnType<typeof createImageService>;

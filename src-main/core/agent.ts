// The composition root: builds the agent from injected parts. Electron's main process, headless mode,
// the CLI and the tests all get their agent from here.
import { z } from 'zod';
import { readJsonDocument } from './atomic-file';
import os from 'node:os';
import { version } from '../../package.json';
import { methods, type AgentStatus, type ConfigProblem, type Handlers, type MethodName } from '../common/contract';
import { TabulaError, toErrorInfo } from '../common/errors';
import { createEventLog, type EventLog } from '../common/event-log';
import { createRouter, type Router } from '../common/router';
import { loadConfig } from './config';
import { createDesktopOpener, type DesktopOpener } from './desktop-open';
import { createFleetPlugin } from './fleet/plugin';
import type { HomeSafety } from './helpdesk/home-safety';
import { readIdentity } from './helpdesk/identity';
import { createHelpdeskPlugin } from './helpdesk/plugin';
import { createHelperClient, type HelperClient } from './image/helper-client';
import { createImagePlugin } from './image/plugin';
import { readImageStatus } from './os-release';
import { ensureRuntimeDir, ensureStateDir, resolvePaths, type Paths } from './paths';
import { createPrefsPlugin } from './prefs/plugin';
import type { Clock } from './runtime/clock';
import { allFeatures, type FeatureName } from './runtime/plugin';
import { realProbes, watchNetworkUp, type Probes } from './runtime/probes';
import { createSyncPlugin } from './sync/plugin';

/** The one version: package.json's. */
export const agentVersion: string = version;

/** What a feature needs built beside it (the agent hands it ports onto these). */
const needs: Record<FeatureName, FeatureName[]> = { sync: [], prefs: [], image: [], helpdesk: ['image', 'sync'], fleet: ['image', 'helpdesk'] };

function withNeeds(wanted: readonly FeatureName[]): Set<FeatureName> {
  const out = new Set<FeatureName>();
  const add = (f: FeatureName) => {
    if (out.has(f)) return;
    out.add(f);
    needs[f].forEach(add);
  };
  wanted.forEach(add);
  return out;
}

export interface AgentOptions {
  env?: NodeJS.ProcessEnv;
  paths?: Paths;
  now?: () => Date;
  /** Start syncs by themselves (schedule, home changes, queued requests). Tests that drive runs turn it off. */
  autoStart?: boolean;
  /** Apply the saved display layout when monitors are plugged or unplugged (a long-running agent). */
  watchDisplays?: boolean;
  /** Where bugs (not expected failures) are reported. */
  logBug?: (err: unknown) => void;
  /** Image updates: how tabula-helper is reached, power/network probes, the scheduler's clock. */
  imageHelper?: HelperClient;
  probes?: Probes;
  clock?: Clock;
  /** The reimage guard's question; the home-sync engine provides its own (issue 3). */
  homeSafety?: HomeSafety;
  /** Opens files and folders for the window (default: xdg-open). */
  opener?: DesktopOpener;
  /** Reports network-up (default: `nmcli monitor`); returns a stop function. */
  watchNetwork?: (onUp: () => void) => () => void;
  /**
   * The features to build (default: all), with what they need. A command builds only its own:
   * `tabula prefs` builds prefs alone, so it never starts a queued sync, pkexec or nmcli.
   */
  features?: readonly FeatureName[];
}

export interface Agent {
  paths: Paths;
  router: Router;
  events: EventLog;
  status(): AgentStatus;
  /** The features this agent was built with. */
  features: ReadonlySet<FeatureName>;
  /** Cancels work in progress and waits for it to stop. */
  shutdown(): Promise<void>;
}

export function createAgent(opts: AgentOptions = {}): Agent {
  const paths = opts.paths ?? resolvePaths(opts.env);
  // Refuse to start on folders another user could read or plant files in (throws with the reason).
  ensureStateDir(paths);
  ensureRuntimeDir(paths);
  const events = createEventLog(1000, opts.now);
  const ownProblems: ConfigProblem[] = [];
  // Config is re-read on every use: an edit takes effect at the next backup, with no restart.
  let configProblems: ConfigProblem[] = [];
  const getConfig = () => {
    const loaded = loadConfig(paths);
    configProblems = loaded.problems;
    return loaded.config;
  };
  getConfig();

  const want = withNeeds(opts.features ?? allFeatures);
  const reportProblem = (message: string) => ownProblems.push({ file: paths.stateDir, message });
  const systemConfig = () => loadConfig(paths, { systemOnly: true }).config;
  const probes = opts.probes ?? realProbes;
  const opener = opts.opener ?? createDesktopOpener(opts.env);

  const sync = want.has('sync') ? createSyncPlugin({ opener, paths, getConfig, events, now: opts.now, clock: opts.clock, autoStart: opts.autoStart, probes, reportProblem }) : null;
  const prefs = want.has('prefs') ? createPrefsPlugin({ paths, env: opts.env, events, now: opts.now, watchDisplays: opts.watchDisplays }) : null;
  const image = want.has('image')
    ? createImagePlugin({
        paths,
        getSystemConfig: systemConfig,
        events,
        helper: opts.imageHelper ?? createHelperClient({ env: opts.env }),
        probes,
        clock: opts.clock,
        reportProblem,
        watchNetwork: opts.watchNetwork ?? watchNetworkUp,
      })
    : null;
  const identity = () => readIdentity(paths.root, systemConfig().fleet.machineClass);
  const homeSafety: HomeSafety | null = opts.homeSafety ?? sync?.service ?? null;
  const helpdesk =
    want.has('helpdesk') && image && homeSafety
      ? createHelpdeskPlugin({
          paths,
          events,
          image: image.service,
          homeSafety,
          identity,
          clock: opts.clock,
          lastBackupAt: () => sync?.status().lastSuccessAt ?? null,
          countdownSeconds: () => systemConfig().fleet.reimageCountdownSeconds,
          opener,
          // Bound late: the fleet plug-in is made after the helpdesk (it hands reimages to it).
          fleetReimageStopped: (signed, reason) => void fleet?.service.requeue(signed, reason).catch((err: unknown) => reportProblem(`Fleet commands: ${toErrorInfo(err).message}`)),
          // Secrets are removed by the helpdesk service (by key, at any depth) before the bundle is written.
          diagnostics: (): object => {
            const loaded = loadConfig(paths);
            // Read as every config file is (no symlink, no pipe or device, size cap): a layer is hostile too.
            const layer = (file: string) => {
              const read = readJsonDocument(file, z.unknown());
              return read.status === 'ok' ? { file, content: read.value } : { file, problem: read.status === 'missing' ? 'missing' : read.problem };
            };
            const files = [paths.systemDefaultsFile, paths.adminConfigFile, paths.userConfigFile, ...(paths.extraConfigFile ? [paths.extraConfigFile] : [])];
            return {
              status: safeCall(() => status()),
              config: { effective: loaded.config, layers: files.map(layer), problems: loaded.problems },
              prefs: prefs ? safeCall(() => prefs.service.exportDoc()) : { problem: 'The preferences feature is not running here.' },
              backupHistory: sync?.service.history(20) ?? [],
              recentEvents: events.since(Math.max(0, events.lastId() - 100)).events.filter((e) => e.type !== 'backup-progress' && e.type !== 'image-progress'),
              deployments: image.service.deployments(),
              fleetCommands: fleet?.service.history().slice(-20) ?? [],
            };
          },
        })
      : null;
  const fleet =
    want.has('fleet') && image && helpdesk && homeSafety
      ? createFleetPlugin({
          paths,
          getSystemConfig: systemConfig,
          identity,
          events,
          clock: opts.clock,
          reportProblem,
          actions: {
            pull: async () => (image.service.pull(), 'Image check and pull started.'),
            diagnostics: async () => `Diagnostics written to ${helpdesk.service.diagnostics().file}.`,
            reimage: async (override, signed) =>
              (await helpdesk.service.reimage({ override, acknowledgedCount: override ? (await homeSafety.unsyncedChanges()).count : undefined }, 'fleet-command', signed)).reason,
            reimageWithdrawn: (message) => helpdesk.service.withdrawn(message),
          },
        })
      : null;
  // A signed reimage waiting for the home to be backed up runs as soon as a backup succeeds.
  // A fleet server that cannot be reached then is simply asked again at the next poll.
  const unsubscribeFleet = fleet
    ? events.subscribe((e) => {
        if (e.type === 'backup-finished' && e.data.outcome === 'success') void fleet.service.retryWaiting().catch(() => undefined);
      })
    : () => undefined;
  const plugins = [sync, prefs, image, helpdesk, fleet].filter((p) => p !== null);

  const status = (): AgentStatus => {
    if (!sync || !image) throw new TabulaError('not-running', 'The whole status needs the sync and image features, which this command did not start.');
    const backupStatus = sync.status(); // re-reads config
    return {
      hostname: os.hostname(),
      agentVersion,
      image: readImageStatus(paths.osReleaseFiles),
      backup: backupStatus,
      imageUpdate: image.status(),
      problems: [...configProblems, ...ownProblems],
      reimage: helpdesk?.service.status() ?? null,
      lastEventId: events.lastId(),
    };
  };

  const served: Partial<Record<MethodName, unknown>> = {
    'status.get': () => status(),
    'events.since': ({ after }: { after: number }) => events.since(after),
  };
  for (const p of plugins) Object.assign(served, p.handlers);
  // A method of a feature this agent was not built with answers so, by name.
  for (const m of Object.keys(methods) as MethodName[]) {
    served[m] ??= () => {
      throw new TabulaError('not-running', `${m} is not served here: this command started only ${[...want].join(', ')}.`);
    };
  }
  const router = createRouter(served as Handlers, opts.logBug ?? ((err) => console.error('tabula: internal error:', err)));
  for (const p of plugins) p.start();

  return {
    paths,
    router,
    events,
    status,
    features: want,
    async shutdown() {
      unsubscribeFleet();
      await Promise.all(plugins.map((p) => p.stop()));
    },
  };
}

function safeCall<T>(fn: () => T): T | { problem: string } {
  try {
    return fn();
  } catch (err) {
    return { problem: (err as Error).message };
  }
}

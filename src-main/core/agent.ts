// The composition root: builds the agent from injected parts. Electron's main process, headless mode,
// the CLI and the tests all get their agent from here.
import fs from 'node:fs';
import os from 'node:os';
import type { AgentStatus, ConfigProblem, Handlers } from '../common/contract';
import { createEventLog, type EventLog } from '../common/event-log';
import { createRouter, type Router } from '../common/router';
import { loadConfig } from './config';
import { readImageStatus } from './os-release';
import { ensureRuntimeDir, ensureStateDir, resolvePaths, type Paths } from './paths';
import { createSyncService } from './sync/service';
import { createDesktopOpener, type DesktopOpener } from './desktop-open';
import { createPrefsService } from './prefs/prefs-service';
import { createFleetCommands } from './fleet/commands';
import { createHelpdeskService } from './helpdesk/helpdesk-service';
import type { HomeSafety } from './helpdesk/home-safety';
import { readIdentity } from './helpdesk/identity';
import { createHelperClient, type HelperClient } from './image/helper-client';
import { createImageService } from './image/image-service';
import type { Clock } from './runtime/clock';
import { realProbes, watchNetworkUp, type Probes } from './runtime/probes';

export const agentVersion = '0.1.0';

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
}

export interface Agent {
  paths: Paths;
  router: Router;
  events: EventLog;
  status(): AgentStatus;
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
  const opener = opts.opener ?? createDesktopOpener(opts.env);

  const backup = createSyncService({
    opener,
    paths,
    getConfig,
    events,
    now: opts.now,
    autoStart: opts.autoStart,
    probes: opts.probes ?? realProbes,
    reportProblem: (message) => ownProblems.push({ file: paths.stateDir, message }),
  });

  const prefs = createPrefsService({ paths, env: opts.env, events, now: opts.now });
  const stopWatchingDisplays = opts.watchDisplays ? prefs.watchDisplays() : () => undefined;
  const systemConfig = () => loadConfig(paths, { systemOnly: true }).config;
  const reportProblem = (message: string) => ownProblems.push({ file: paths.stateDir, message });
  const image = createImageService({ paths, getSystemConfig: systemConfig, events, helper: opts.imageHelper ?? createHelperClient({ env: opts.env }), probes: opts.probes ?? realProbes, clock: opts.clock, reportProblem });
  const identity = () => readIdentity(paths.root, systemConfig().fleet.machineClass);
  const homeSafety = opts.homeSafety ?? backup;
  const helpdesk = createHelpdeskService({
    paths,
    events,
    image,
    homeSafety,
    identity,
    clock: opts.clock,
    lastBackupAt: () => backup.status().lastSuccessAt,
    countdownSeconds: () => systemConfig().fleet.reimageCountdownSeconds,
    opener,
    // Secrets are removed by the helpdesk service (by key, at any depth) before the bundle is written.
    diagnostics: () => {
      const loaded = loadConfig(paths);
      const layer = (file: string) => {
        try {
          return { file, content: JSON.parse(fs.readFileSync(file, 'utf8')) as unknown };
        } catch (err) {
          return { file, problem: (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : (err as Error).message };
        }
      };
      const files = [paths.systemDefaultsFile, paths.adminConfigFile, paths.userConfigFile, ...(paths.extraConfigFile ? [paths.extraConfigFile] : [])];
      return {
        status: status(),
        config: { effective: loaded.config, layers: files.map(layer), problems: loaded.problems },
        prefs: safeCall(() => prefs.exportDoc()),
        backupHistory: backup.history(20),
        recentEvents: events.since(Math.max(0, events.lastId() - 100)).events.filter((e) => e.type !== 'backup-progress' && e.type !== 'image-progress'),
        deployments: image.deployments(),
        fleetCommands: fleet.history().slice(-20),
      };
    },
  });
  const fleet = createFleetCommands({
    paths,
    getSystemConfig: systemConfig,
    identity,
    events,
    clock: opts.clock,
    reportProblem,
    actions: {
      pull: async () => (image.pull(), 'Image check and pull started.'),
      diagnostics: async () => `Diagnostics written to ${helpdesk.diagnostics().file}.`,
      reimage: async (override) => (await helpdesk.reimage({ override, acknowledgedCount: override ? (await homeSafety.unsyncedChanges()).count : undefined }, 'fleet-command')).reason,
    },
  });
  void image.start();
  fleet.start();
  const stopNetworkWatch = (opts.watchNetwork ?? watchNetworkUp)(() => void image.networkUp());

  const status = (): AgentStatus => {
    const backupStatus = backup.status(); // re-reads config
    return {
      hostname: os.hostname(),
      agentVersion,
      image: readImageStatus(paths.osReleaseFiles),
      backup: backupStatus,
      imageUpdate: image.status(),
      problems: [...configProblems, ...ownProblems],
    };
  };

  const handlers: Handlers = {
    'status.get': () => status(),
    'backup.start': ({ force }) => backup.start(force),
    'backup.cancel': () => backup.cancel(),
    'backup.pause': () => backup.pause(),
    'backup.resume': () => backup.resume(),
    'backup.settings': (s) => backup.settings(s),
    'conflicts.resolve': ({ path, keep }) => backup.resolveConflict(path, keep),
    'conflicts.open': ({ path, side, reveal }) => backup.openConflict(path, side, reveal),
    'versions.list': ({ path }) => backup.versions(path),
    'versions.restore': ({ path, at, to }) => backup.restore(path, at, to),
    'backup.history': ({ limit }) => backup.history(limit),
    'events.since': ({ after }) => events.since(after),
    'prefs.get': () => prefs.get(),
    'prefs.set': ({ key, value }) => prefs.set(key, value),
    'prefs.export': () => prefs.exportDoc(),
    'prefs.import': ({ doc }) => prefs.importDoc(doc),
    'prefs.state': () => prefs.state(),
    'prefs.apply': ({ dryRun, areas }) => prefs.apply(dryRun, areas),
    'prefs.saveDisplayProfile': ({ profile }) => prefs.saveDisplayProfile(profile),
    'prefs.saveNetworkProfile': ({ profile, secret }) => prefs.saveNetworkProfile(profile, secret),
    'image.status': () => image.status(),
    'image.check': () => image.check(),
    'image.pull': () => image.pull(),
    'image.rollback': () => image.rollback(),
    'helpdesk.plan': () => helpdesk.plan(),
    'helpdesk.reimage': (args) => helpdesk.reimage(args),
    'helpdesk.cancelReimage': () => helpdesk.cancel(),
    'helpdesk.diagnostics': () => helpdesk.diagnostics(),
    'helpdesk.showDiagnostics': () => helpdesk.showDiagnostics(),
    'fleet.poll': async () => ({ record: await fleet.poll() }),
  };
  const router = createRouter(handlers, opts.logBug ?? ((err) => console.error('tabula: internal error:', err)));

  return {
    paths,
    router,
    events,
    status,
    async shutdown() {
      backup.dispose();
      stopWatchingDisplays();
      backup.cancel();
      image.stop();
      fleet.stop();
      stopNetworkWatch();
      helpdesk.stop();
      await Promise.all([backup.whenIdle(), image.whenIdle()]);
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

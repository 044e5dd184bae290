// The composition root: builds the agent from injected parts. Electron's main process, headless mode,
// the CLI and the tests all get their agent from here.
import os from 'node:os';
import type { AgentStatus, ConfigProblem, Handlers } from '../common/contract';
import { createEventLog, type EventLog } from '../common/event-log';
import { createRouter, type Router } from '../common/router';
import { loadConfig } from './config';
import { readImageStatus } from './os-release';
import { resolvePaths, type Paths } from './paths';
import { createSyncService } from './sync/service';
import { createPrefsService } from './prefs/prefs-service';

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

  const backup = createSyncService({
    paths,
    getConfig,
    events,
    now: opts.now,
    autoStart: opts.autoStart,
    reportProblem: (message) => ownProblems.push({ file: paths.stateDir, message }),
  });

  const prefs = createPrefsService({ paths, env: opts.env, events, now: opts.now });
  const stopWatchingDisplays = opts.watchDisplays ? prefs.watchDisplays() : () => undefined;

  const status = (): AgentStatus => {
    const backupStatus = backup.status(); // re-reads config
    return {
      hostname: os.hostname(),
      agentVersion,
      image: readImageStatus(paths.osReleaseFiles),
      backup: backupStatus,
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
      await backup.whenIdle();
    },
  };
}

// Preferences as a plug-in: printers, displays and network profiles. `tabula prefs` builds this one alone.
import { prefsMethods } from '../../common/contract/prefs';
import type { EventLog } from '../../common/event-log';
import type { Paths } from '../paths';
import type { FeaturePlugin } from '../runtime/plugin';
import { createPrefsService } from './prefs-service';

export interface PrefsPluginDeps {
  paths: Paths;
  env?: NodeJS.ProcessEnv;
  events: EventLog;
  now?: () => Date;
  /** Apply the saved display layout when monitors are plugged or unplugged (a long-running agent). */
  watchDisplays?: boolean;
}

export function createPrefsPlugin(deps: PrefsPluginDeps): FeaturePlugin<typeof prefsMethods, null> & { service: ReturnType<typeof createPrefsService> } {
  const prefs = createPrefsService({ paths: deps.paths, env: deps.env, events: deps.events, now: deps.now });
  let stopWatching = () => undefined as void;
  return {
    name: 'prefs',
    contract: prefsMethods,
    service: prefs,
    handlers: {
      'prefs.get': () => prefs.get(),
      'prefs.set': ({ key, value }) => prefs.set(key, value),
      'prefs.export': () => prefs.exportDoc(),
      'prefs.import': ({ doc }) => prefs.importDoc(doc),
      'prefs.state': () => prefs.state(),
      'prefs.apply': ({ dryRun, areas }) => prefs.apply(dryRun, areas),
      'prefs.saveDisplayProfile': ({ profile }) => prefs.saveDisplayProfile(profile),
      'prefs.saveNetworkProfile': ({ profile, secret }) => prefs.saveNetworkProfile(profile, secret),
    },
    status: () => null,
    start() {
      if (deps.watchDisplays) stopWatching = prefs.watchDisplays();
    },
    async stop() {
      stopWatching();
    },
  };
}

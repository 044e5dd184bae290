// The preferences service: the store, the keyring and the three appliers behind the contract's
// prefs.* methods. The CLI builds one in-process (so `tabula prefs apply` works at login before any
// agent runs); the agent builds one for the window.
import os from 'node:os';
import path from 'node:path';
import type { ApplyItem, ApplyReport, PrefArea, PrefsCurrentState, PrefsView } from '../../common/contract/prefs';
import type { EventLog } from '../../common/event-log';
import { TabulaError } from '../../common/errors';
import { profileKey, pskProblem, type DisplayProfile, type NetworkProfile } from '../../common/prefs-schema';
import type { Paths } from '../paths';
import { createDisplaysApplier } from './displays';
import { createNetworkApplier, secretAccount, needsSecret } from './network';
import { createPrefsStore } from './prefs-store';
import { createPrintersApplier } from './printers';
import { createSecrets, type Secrets } from './secrets';

export interface PrefsServiceOptions {
  paths: Paths;
  env?: NodeJS.ProcessEnv;
  events?: EventLog;
  now?: () => Date;
  secrets?: Secrets;
}

export function createPrefsService({ paths, env = process.env, events, now = () => new Date(), secrets = createSecrets({ env }) }: PrefsServiceOptions) {
  const store = createPrefsStore({ paths });
  const printers = createPrintersApplier({ home: paths.home, env });
  const displays = createDisplaysApplier({ env, configHome: path.dirname(paths.userConfigDir), sysDrm: path.join(paths.root, 'sys/class/drm') });
  const user = env.USER || env.LOGNAME || os.userInfo().username;
  const network = createNetworkApplier({ env, user, secrets });

  const changed = (view: PrefsView) => {
    events?.publish('prefs-changed', view);
    return view;
  };

  async function state(): Promise<PrefsCurrentState> {
    const [p, d, n] = await Promise.all([printers.read(), displays.read(), network.read(store.view().effective.network.profiles)]);
    return {
      printers: p,
      displays: { session: d.session, monitors: d.monitors, profileKey: profileKey(d.monitors.map((m) => m.monitor)), problem: d.problem },
      network: n,
    };
  }

  async function apply(dryRun = false, areas: PrefArea[] = ['printers', 'displays', 'network']): Promise<ApplyReport> {
    const { effective } = store.view();
    const items: ApplyItem[] = [];
    // Each area on its own: one that cannot run (no cupsd, no display) never stops the others.
    for (const area of areas) {
      try {
        if (area === 'printers') items.push(...(await printers.apply(effective.printers, dryRun)));
        if (area === 'displays') items.push(...(await displays.apply(effective.displays, dryRun)));
        if (area === 'network') items.push(...(await network.apply(effective.network.profiles, dryRun)));
      } catch (err) {
        const reason = err instanceof TabulaError ? err.message : `Something went wrong inside Tabula: ${(err as Error).message}`;
        items.push({ area, item: area[0]!.toUpperCase() + area.slice(1), action: 'apply', status: 'failed', reason });
      }
    }
    const report: ApplyReport = { at: now().toISOString(), dryRun, items };
    if (!dryRun) events?.publish('prefs-applied', report);
    return report;
  }

  async function saveDisplayProfile(profile: DisplayProfile): Promise<PrefsView> {
    const key = profileKey(profile.outputs.map((o) => o.monitor));
    const others = store.view().effective.displays.profiles.filter((p) => profileKey(p.outputs.map((o) => o.monitor)) !== key);
    return changed(store.set('displays.profiles', [...others, profile]));
  }

  async function saveNetworkProfile(profile: NetworkProfile, secret?: string): Promise<PrefsView> {
    if (secret !== undefined) {
      if (!needsSecret(profile)) throw new TabulaError('invalid-argument', `"${profile.name}" is an open network and takes no password.`);
      const problem =
        profile.kind === 'wireguard'
          ? /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw480]=$/.test(secret)
            ? null
            : 'A WireGuard private key is 44 characters of base64 (as `wg genkey` prints it).'
          : profile.security !== 'wpa2-enterprise-peap'
            ? pskProblem(secret)
            : secret.length
              ? null
              : 'The password is empty.';
      if (problem) throw new TabulaError('invalid-argument', `${problem} Nothing was saved.`);
    }
    // Validate the whole list before touching the keyring, so a refused profile leaves no orphan secret.
    const others = store.view().effective.network.profiles.filter((p) => p.name !== profile.name);
    const next = [...others, profile];
    if (secret !== undefined) await secrets.set(secretAccount(user, profile), secret);
    return changed(store.set('network.profiles', next));
  }

  /**
   * Hotplug on X11: watches the set of connected monitors (xrandr --current, no re-probe) and applies
   * the saved layout for the new set when it changes. Returns a function that stops watching.
   */
  function watchDisplays(intervalMs = 3000): () => void {
    if (displays.session !== 'x11') return () => undefined;
    let lastKey: string | null = null;
    let busy = false;
    const tick = async () => {
      if (busy) return;
      busy = true;
      try {
        const s = await displays.read(true);
        if (s.problem) return;
        const key = profileKey(s.monitors.map((m) => m.monitor));
        if (lastKey !== null && key !== lastKey) {
          const items = await displays.apply(store.view().effective.displays, false);
          if (items.length) events?.publish('prefs-applied', { at: now().toISOString(), dryRun: false, items });
        }
        lastKey = key;
      } catch {
        /* the next tick tries again */
      } finally {
        busy = false;
      }
    };
    void tick();
    const timer = setInterval(() => void tick(), intervalMs);
    timer.unref?.();
    return () => clearInterval(timer);
  }

  return {
    store,
    secrets,
    watchDisplays,
    state,
    apply,
    saveDisplayProfile,
    saveNetworkProfile,
    get: () => store.view(),
    set: (key: string, value: unknown) => changed(store.set(key, value)),
    exportDoc: () => store.exportDoc(),
    importDoc(doc: unknown) {
      const r = store.importDoc(doc);
      changed(r.view);
      return r;
    },
  };
}
export type PrefsService = ReturnType<typeof createPrefsService>;

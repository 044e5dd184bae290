// Preferences: Network, Printers and Displays tabs. Each shows what this laptop has now next to what
// is saved, validates inline with the same schemas the agent uses, marks fleet-locked keys with the
// fleet's reason, and shows per item "Applied" or the reason it was not.
import { useId, useState } from 'react';
import { useStore, type StoreApi } from 'zustand';
import type { ApplyItem, PrefArea, PrefLeaf } from '../../src-main/common/contract/prefs';
import { displayProfileSchema, networkProfileSchema, printerOptionsSchema, pskProblem, type DisplayOutput, type NetworkProfile, type PrinterOptions } from '../../src-main/common/prefs-schema';
import { FeedbackLine } from '../shared/FeedbackLine';
import { FieldError } from '../shared/FieldError';
import { TabPanel, Tabs } from '../shared/Tabs';
import { profileFromMonitors, savedProfileFor } from '../../src-main/common/display-profile';
import type { PrefsState } from './prefs-store';

type Tab = 'network' | 'printers' | 'displays';
const tabs: { id: Tab; label: string }[] = [
  { id: 'network', label: 'Network' },
  { id: 'printers', label: 'Printers' },
  { id: 'displays', label: 'Displays' },
];

const statusText: Record<ApplyItem['status'], string> = { applied: 'Applied', unchanged: 'Already so', planned: 'Would apply', failed: 'Not applied', skipped: 'Not applied' };

function Report({ store, area }: { store: StoreApi<PrefsState>; area: PrefArea }) {
  const report = useStore(store, (s) => s.report);
  const items = report?.items.filter((i) => i.area === area) ?? [];
  if (!report || !items.length) return null;
  return (
    <ul className="report" aria-label="Apply result">
      {items.map((i) => (
        <li key={i.item + i.action} className={`report-${i.status}`}>
          <strong>{statusText[i.status]}</strong> — {i.item}: {i.action}
          {i.reason && <div className="muted">{i.reason}</div>}
        </li>
      ))}
    </ul>
  );
}

function Locked({ store, leaf }: { store: StoreApi<PrefsState>; leaf: PrefLeaf }) {
  const reason = useStore(store, (s) => s.view?.locks[leaf]);
  if (!reason) return null;
  return (
    <p className="locked" role="note">
      🔒 Set by your organisation: {reason}
    </p>
  );
}

// ---- Printers -----------------------------------------------------------------------------------

function PrintersTab({ store }: { store: StoreApi<PrefsState> }) {
  const current = useStore(store, (s) => s.current?.printers);
  const view = useStore(store, (s) => s.view);
  const busy = useStore(store, (s) => s.busy !== null);
  const saved = view?.effective.printers;
  const dests = current?.dests ?? [];
  const savedQueue = saved?.default ? dests.find((d) => d.uri === saved.default!.uri)?.queue ?? '' : '';
  const [choice, setChoice] = useState<string | null>(null);
  const queue = choice ?? savedQueue ?? '';
  const dest = dests.find((d) => d.queue === queue);
  const savedOptions = dest ? saved?.options.find((o) => o.printer.uri === dest.uri)?.options ?? {} : {};
  const [draft, setDraft] = useState<PrinterOptions | null>(null);
  const options = draft ?? savedOptions;
  const lockedDefault = !!view?.locks['printers.default'];
  const lockedOptions = !!view?.locks['printers.options'];
  const problem = printerOptionsSchema.safeParse(options).error?.issues[0]?.message ?? null;
  const problemId = useId();

  const save = async () => {
    if (!dest || !saved) return;
    const ref = { uri: dest.uri, ...(dest.dnssdName ? { dnssdName: dest.dnssdName } : {}), label: dest.info ?? dest.queue };
    if (!lockedDefault && (await store.getState().set('printers', 'printers.default', ref)) === false) return;
    if (!lockedOptions) {
      const others = saved.options.filter((o) => o.printer.uri !== dest.uri);
      const clean = Object.fromEntries(Object.entries(options).filter(([, v]) => v)) as PrinterOptions;
      await store.getState().set('printers', 'printers.options', Object.keys(clean).length ? [...others, { printer: ref, options: clean }] : others);
    }
    setDraft(null);
  };

  return (
    <>
      {current?.problem && <p className="banner warning">{current.problem}</p>}
      <p className="muted">
        Saved default: {saved?.default ? (saved.default.label ?? saved.default.uri) : 'none'}
        {saved?.default && !savedQueue && dests.length > 0 && ' (not available on this laptop)'} · Default now: {dests.find((d) => d.isDefault)?.queue ?? 'none'}
      </p>
      <Locked store={store} leaf="printers.default" />
      <label>
        Default printer{' '}
        <select aria-label="Default printer" value={queue} disabled={lockedDefault || !dests.length} onChange={(e) => (setChoice(e.target.value), setDraft(null))}>
          <option value="">Choose a printer…</option>
          {dests.map((d) => (
            <option key={d.queue} value={d.queue}>
              {d.queue} — {d.dnssdName ?? d.uri}
            </option>
          ))}
        </select>
      </label>
      {dest && (
        <fieldset disabled={lockedOptions}>
          <legend>Options for {dest.queue}</legend>
          <Locked store={store} leaf="printers.options" />
          <label>
            Two-sided{' '}
            <select aria-label="Two-sided" value={options.duplex ?? ''} onChange={(e) => setDraft({ ...options, duplex: (e.target.value || undefined) as PrinterOptions['duplex'] })}>
              <option value="">Printer default</option>
              <option value="one-sided">One-sided</option>
              <option value="two-sided-long-edge">Two-sided (long edge)</option>
              <option value="two-sided-short-edge">Two-sided (short edge)</option>
            </select>
          </label>{' '}
          <label>
            Paper{' '}
            <select aria-label="Paper size" value={options.media ?? ''} onChange={(e) => setDraft({ ...options, media: e.target.value || undefined })}>
              <option value="">Printer default</option>
              {dest.media.map((m) => (
                <option key={m}>{m}</option>
              ))}
            </select>
          </label>{' '}
          <label>
            Colour{' '}
            <select aria-label="Colour" value={options.color ?? ''} onChange={(e) => setDraft({ ...options, color: (e.target.value || undefined) as PrinterOptions['color'] })}>
              <option value="">Printer default</option>
              <option value="color">Colour</option>
              <option value="monochrome">Black and white</option>
            </select>
          </label>
        </fieldset>
      )}
      <FieldError id={problemId} problem={problem} />
      <div className="actions">
        <button disabled={busy || !dest || !!problem} aria-describedby={problemId} onClick={() => void save()}>
          Save
        </button>
        <button className="secondary" disabled={busy} onClick={() => void store.getState().apply('printers')}>
          Apply now
        </button>
      </div>
      <FeedbackLine store={store} place="printers" />
      <Report store={store} area="printers" />
    </>
  );
}

// ---- Displays -----------------------------------------------------------------------------------

function DisplaysTab({ store }: { store: StoreApi<PrefsState> }) {
  const current = useStore(store, (s) => s.current?.displays);
  const view = useStore(store, (s) => s.view);
  const busy = useStore(store, (s) => s.busy !== null);
  const monitors = current?.monitors ?? [];
  const saved = view?.effective.displays.profiles ?? [];
  const savedProfile = savedProfileFor(monitors, saved);
  const [draft, setDraft] = useState<DisplayOutput[] | null>(null);
  const base = profileFromMonitors(monitors, saved);
  const outputs = draft ?? base.outputs;
  const profile = { name: base.name, outputs };
  const check = displayProfileSchema.safeParse(profile);
  // With no monitor there is nothing to arrange: say so, not the schema's "Too small" sentence.
  const problem = !monitors.length || check.success ? null : `This layout cannot be saved: ${check.error.issues[0]!.message}.`;
  const problemId = useId();
  const locked = !!view?.locks['displays.profiles'];
  const edit = (i: number, change: Partial<DisplayOutput>) =>
    setDraft(outputs.map((o, j) => (j === i ? { ...o, ...change } : change.primary ? { ...o, primary: false } : o)));

  return (
    <>
      {current?.problem && <p className="banner warning">{current.problem}</p>}
      {!current?.problem && current && !monitors.length && <p className="banner warning">No display is connected that Tabula can arrange here.</p>}
      <Locked store={store} leaf="displays.profiles" />
      <p className="muted">{savedProfile ? `Saved layout for these monitors: "${savedProfile.name}".` : monitors.length ? 'No layout is saved for these monitors yet.' : ''}</p>
      <fieldset disabled={locked} hidden={!monitors.length}>
        <legend>Monitors</legend>
        {monitors.map((m, i) => {
          const o = outputs[i]!;
          const sizes = [...new Map(m.modes.map((mode) => [`${mode.width}x${mode.height}`, mode])).values()];
          return (
            <div className="monitor" key={m.monitor} data-testid={`monitor-${m.connector}`}>
              <strong>{m.label}</strong> <span className="muted small">on {m.connector} · now {m.enabled ? `${m.width}x${m.height}+${m.x}+${m.y}${m.primary ? ', primary' : ''}` : 'off'}</span>
              <div className="row">
                <label>
                  Resolution{' '}
                  <select aria-label={`Resolution of ${m.connector}`} value={`${o.width}x${o.height}`} onChange={(e) => edit(i, { width: Number(e.target.value.split('x')[0]), height: Number(e.target.value.split('x')[1]) })}>
                    {sizes.map((s) => (
                      <option key={`${s.width}x${s.height}`}>{`${s.width}x${s.height}`}</option>
                    ))}
                  </select>
                </label>{' '}
                <label>
                  X <input aria-label={`X position of ${m.connector}`} type="number" min={0} value={o.x} onChange={(e) => edit(i, { x: Math.max(0, Math.trunc(Number(e.target.value))) })} />
                </label>{' '}
                <label>
                  Y <input aria-label={`Y position of ${m.connector}`} type="number" min={0} value={o.y} onChange={(e) => edit(i, { y: Math.max(0, Math.trunc(Number(e.target.value))) })} />
                </label>{' '}
                <label>
                  <input type="radio" name="primary" aria-label={`Primary: ${m.connector}`} checked={o.primary} onChange={() => edit(i, { primary: true })} /> Primary
                </label>{' '}
                <label>
                  <input type="checkbox" aria-label={`On: ${m.connector}`} checked={o.enabled} onChange={(e) => edit(i, { enabled: e.target.checked })} /> On
                </label>
              </div>
            </div>
          );
        })}
      </fieldset>
      <FieldError id={problemId} problem={problem} />
      <div className="actions">
        <button
          disabled={busy || locked || !!problem || !monitors.length}
          aria-describedby={problemId}
          onClick={async () => {
            if (await store.getState().saveDisplayProfile(profile)) setDraft(null);
          }}
        >
          Save layout for these monitors
        </button>
        <button className="secondary" disabled={busy} onClick={() => void store.getState().apply('displays')}>
          Apply now
        </button>
      </div>
      <FeedbackLine store={store} place="displays" />
      <Report store={store} area="displays" />
    </>
  );
}

// ---- Network ------------------------------------------------------------------------------------

/** What the form lacks, in the form's own words (the schema's messages name config fields). */
function formProblem(issue: { path: PropertyKey[]; message: string }, caCert: string): string {
  switch (issue.path.join('.')) {
    case 'ssid':
      return `The network name ${issue.message}.`;
    case 'identity':
      return 'Enter your user name for this network.';
    case 'caCert':
      return caCert ? 'The CA certificate must be a full path, starting with /.' : 'Choose the CA certificate that proves the network is genuine, or tick “No CA certificate is required”.';
    case 'noCaCertificate':
      return 'Either name a CA certificate or tick “No CA certificate is required”, not both.';
    default:
      return `The network ${issue.message}.`;
  }
}

function NetworkTab({ store }: { store: StoreApi<PrefsState> }) {
  const current = useStore(store, (s) => s.current?.network);
  const view = useStore(store, (s) => s.view);
  const busy = useStore(store, (s) => s.busy !== null);
  const saved = view?.effective.network.profiles ?? [];
  const [form, setForm] = useState({ name: '', ssid: '', security: 'wpa2-personal', identity: '', caCert: '', noCaCertificate: false, password: '' });
  const locked = !!view?.locks['network.profiles'];
  const candidate = {
    kind: 'wifi',
    name: form.name || form.ssid,
    ssid: form.ssid,
    security: form.security,
    autoconnect: true,
    ...(form.security === 'wpa2-enterprise-peap' ? { identity: form.identity, ...(form.caCert ? { caCert: form.caCert } : {}), ...(form.noCaCertificate ? { noCaCertificate: true } : {}) } : {}),
  };
  const parsed = networkProfileSchema.safeParse(candidate);
  const issue = parsed.error?.issues[0];
  let problem = form.ssid && issue ? formProblem(issue, form.caCert) : null;
  if (!problem && form.security !== 'open' && form.password) {
    problem = form.security === 'wpa2-enterprise-peap' ? null : pskProblem(form.password);
  }
  const ready = parsed.success && !problem && (form.security === 'open' || form.password.length > 0);
  const problemId = useId();

  return (
    <>
      {current?.problem && <p className="banner warning">{current.problem}</p>}
      <Locked store={store} leaf="network.profiles" />
      <ul className="profiles">
        {saved.map((p: NetworkProfile) => {
          const st = current?.profiles.find((s) => s.name === p.name);
          return (
            <li key={p.name}>
              <strong>{p.name}</strong> <span className="muted small">{p.kind === 'wifi' ? `Wi-Fi “${p.ssid}”, ${p.security}` : `WireGuard ${p.interface}`}</span>{' '}
              <span className="small">
                {st?.present ? '· set up on this laptop' : '· not set up yet'}
                {st?.hasSecret === false && ' · password missing from your keyring'}
              </span>
            </li>
          );
        })}
        {!saved.length && <li className="muted">No networks saved yet.</li>}
      </ul>
      <fieldset disabled={locked}>
        <legend>Add a Wi-Fi network</legend>
        <label>
          Network name (SSID) <input aria-label="Network name (SSID)" value={form.ssid} onChange={(e) => setForm({ ...form, ssid: e.target.value })} />
        </label>{' '}
        <label>
          Security{' '}
          <select aria-label="Security" value={form.security} onChange={(e) => setForm({ ...form, security: e.target.value })}>
            <option value="open">Open</option>
            <option value="wpa2-personal">WPA2 Personal</option>
            <option value="wpa3-personal">WPA3 Personal</option>
            <option value="wpa2-enterprise-peap">WPA2 Enterprise (PEAP)</option>
          </select>
        </label>{' '}
        {form.security === 'wpa2-enterprise-peap' && (
          <>
            <label>
              User name <input aria-label="User name" value={form.identity} onChange={(e) => setForm({ ...form, identity: e.target.value })} />
            </label>{' '}
            <label>
              CA certificate{' '}
              <input aria-label="CA certificate" placeholder="/etc/ssl/certs/…" value={form.caCert} disabled={form.noCaCertificate} onChange={(e) => setForm({ ...form, caCert: e.target.value })} />
            </label>{' '}
            <label>
              <input type="checkbox" checked={form.noCaCertificate} onChange={(e) => setForm({ ...form, noCaCertificate: e.target.checked, caCert: '' })} /> No CA certificate is required (the network
              is not checked: anyone nearby could pose as it)
            </label>
          </>
        )}{' '}
        {form.security !== 'open' && (
          <label>
            Password <input aria-label="Password" type="password" autoComplete="off" value={form.password} onChange={(e) => setForm({ ...form, password: e.target.value })} />
          </label>
        )}
      </fieldset>
      <FieldError id={problemId} problem={problem} />
      <p className="muted small">The password goes to your keyring, never into a file.</p>
      <div className="actions">
        <button
          disabled={busy || locked || !ready}
          aria-describedby={problemId}
          onClick={async () => {
            if (await store.getState().saveNetworkProfile(parsed.data!, form.security === 'open' ? undefined : form.password)) setForm({ name: '', ssid: '', security: form.security, identity: '', caCert: '', noCaCertificate: false, password: '' });
          }}
        >
          Save network
        </button>
        <button className="secondary" disabled={busy} onClick={() => void store.getState().apply('network')}>
          Apply now
        </button>
      </div>
      <FeedbackLine store={store} place="network" />
      <Report store={store} area="network" />
    </>
  );
}

const TAB_KEY = 'tabula-prefs-tab';

export function PreferencesPage({ store }: { store: StoreApi<PrefsState> }) {
  const [tab, setTab] = useState<Tab>(() => (tabs.some((t) => t.id === localStorage.getItem(TAB_KEY)) ? (localStorage.getItem(TAB_KEY) as Tab) : 'network'));
  const view = useStore(store, (s) => s.view);
  const problems = view?.problems ?? [];
  const select = (t: Tab) => {
    setTab(t);
    localStorage.setItem(TAB_KEY, t);
  };
  return (
    <section className="card" aria-labelledby="prefs-title">
      <h2 id="prefs-title">Preferences</h2>
      <Tabs id="prefs" label="Preferences" tabs={tabs} selected={tab} onSelect={select} />
      {problems.map((p) => (
        <p key={p} className="banner warning">
          {p}
        </p>
      ))}
      <FeedbackLine store={store} place="prefs" />
      <TabPanel id="prefs" tab={tab}>
        {tab === 'printers' && <PrintersTab store={store} />}
        {tab === 'displays' && <DisplaysTab store={store} />}
        {tab === 'network' && <NetworkTab store={store} />}
      </TabPanel>
    </section>
  );
}

// Bad preferences through the real `tabula` CLI (issue 12 items 13 and 14): refused by name, with
// nothing changed, whether a running agent takes the call or the CLI works alone.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSandbox, startHeadlessAgent, type AgentSandbox } from '../fixtures/headless-agent';

let sb: AgentSandbox;
let prefsFile: string;
const before = JSON.stringify({ version: 2, printers: { default: { uri: 'ipp://office.example/ipp/print' } } }, null, 1) + '\n';

beforeEach(() => {
  sb = createSandbox();
  prefsFile = path.join(sb.env.XDG_CONFIG_HOME!, 'tabula', 'prefs.json');
  fs.mkdirSync(path.dirname(prefsFile), { recursive: true });
  fs.writeFileSync(prefsFile, before);
});
afterEach(() => sb.dispose());

const peap = (extra: object) => ({ kind: 'wifi', name: 'Corp', ssid: 'CorpNet', security: 'wpa2-enterprise-peap', identity: 'ann', autoconnect: true, ...extra });

describe('preferences refuse what they would otherwise drop or pass on', () => {
  it('`prefs set printers` with an unknown field names it (with the agent running), and saves nothing', async () => {
    await startHeadlessAgent(sb);
    const r = await sb.cli(['prefs', 'set', 'printers', '{"default":{"uri":"ipp://z.example/p"},"colour":"monochrome"}']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('"printers" has no field "colour" (it has default, options). Nothing was changed.');
    expect(r.stdout).not.toMatch(/Saved/);
    const deeper = await sb.cli(['prefs', 'set', 'printers', '{"options":[{"printer":{"uri":"ipp://z.example/p"},"options":{"colour":"monochrome"}}]}']);
    expect(deeper.stderr).toContain('The value for "printers.options" has an unknown key "0.options.colour". Nothing was changed.');
    expect(fs.readFileSync(prefsFile, 'utf8')).toBe(before);
  });

  it('`prefs import` refuses an unknown field at any depth, also in a version-1 document', async () => {
    for (const [doc, key] of [
      [{ version: 2, network: { profiles: [{ ...peap({ noCaCertificate: true }), colour: 1 }] } }, 'network.profiles.0.colour'],
      [{ version: 2, displays: { profiles: [], layout: 'x' } }, 'displays.layout'],
      [{ version: 1, printers: { default: { uri: 'ipp://a.example/p', colour: 1 } } }, 'printers.default.colour'],
    ] as const) {
      const file = path.join(sb.dir, 'import.json');
      fs.writeFileSync(file, JSON.stringify(doc));
      const r = await sb.cli(['prefs', 'import', file]);
      expect([key, r.code]).toEqual([key, 1]);
      expect(r.stderr).toContain(`unknown key "${key}"`);
    }
    expect(fs.readFileSync(prefsFile, 'utf8')).toBe(before);
  });

  it('a Wi-Fi caCert path with a newline is refused (it would add lines to the profile)', async () => {
    const r = await sb.cli(['prefs', 'set', 'network.profiles', JSON.stringify([peap({ caCert: '/etc/ssl/certs/ca.pem\n[proxy]\nmethod=auto' })])]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/network\.profiles.*caCert.*must not contain control characters/);
    expect(fs.readFileSync(prefsFile, 'utf8')).toBe(before);
  });

  it('PEAP without a CA certificate needs the explicit choice not to check the network', async () => {
    const unchecked = await sb.cli(['prefs', 'set', 'network.profiles', JSON.stringify([peap({})])]);
    expect(unchecked.code).toBe(1);
    expect(unchecked.stderr).toContain("needs a CA certificate to check the network's server, or the explicit choice not to check it (noCaCertificate)");
    const both = await sb.cli(['prefs', 'set', 'network.profiles', JSON.stringify([peap({ caCert: '/etc/ssl/certs/ca.pem', noCaCertificate: true })])]);
    expect(both.stderr).toContain('choose one');
    expect(fs.readFileSync(prefsFile, 'utf8')).toBe(before);
    for (const ok of [peap({ noCaCertificate: true }), peap({ caCert: '/etc/ssl/certs/ca-certificates.crt' })]) {
      const r = await sb.cli(['prefs', 'set', 'network.profiles', JSON.stringify([ok])]);
      expect(r.code, r.stderr).toBe(0);
    }
  });
});
